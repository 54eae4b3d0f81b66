// Original file: blockmirror/replication/v1/replication.proto


export interface PeerReadyRequest {
  'pairId'?: (string);
}

export interface PeerReadyRequest__Output {
  'pairId': (string);
}
