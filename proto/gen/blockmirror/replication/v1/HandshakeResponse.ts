// Original file: blockmirror/replication/v1/replication.proto


export interface HandshakeResponse {
  'sessionId'?: (string);
  'currentGeneration'?: (string);
}

export interface HandshakeResponse__Output {
  'sessionId': (string);
  'currentGeneration': (string);
}
