// Original file: blockmirror/replication/v1/replication.proto


export interface MarkSyncedRequest {
  'pairId'?: (string);
  'sessionId'?: (string);
}

export interface MarkSyncedRequest__Output {
  'pairId': (string);
  'sessionId': (string);
}
