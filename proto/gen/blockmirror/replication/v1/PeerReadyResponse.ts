// Original file: blockmirror/replication/v1/replication.proto


export interface PeerReadyResponse {
  'redirect'?: (string);
}

export interface PeerReadyResponse__Output {
  'redirect': (string);
}
