// Original file: blockmirror/replication/v1/replication.proto


export interface CommitGroupResponse {
}

export interface CommitGroupResponse__Output {
}
