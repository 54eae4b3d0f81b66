// Original file: blockmirror/replication/v1/replication.proto


export interface HandshakeResponse {
  'sessionId'?: (string);
  'secondaryGeneration'?: (string);
  'fullSyncRequired'?: (boolean);
  'redirect'?: (string);
}

export interface HandshakeResponse__Output {
  'sessionId': (string);
  'secondaryGeneration': (string);
  'fullSyncRequired': (boolean);
  'redirect': (string);
}
