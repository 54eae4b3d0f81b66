// Original file: blockmirror/replication/v1/replication.proto


export interface MarkSyncedResponse {
}

export interface MarkSyncedResponse__Output {
}
