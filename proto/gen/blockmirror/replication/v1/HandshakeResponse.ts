// Original file: blockmirror/replication/v1/replication.proto

import type { Generations as _blockmirror_replication_v1_Generations, Generations__Output as _blockmirror_replication_v1_Generations__Output } from '../../../blockmirror/replication/v1/Generations.js';

export interface HandshakeResponse {
  'sessionId'?: (string);
  'secondaryGeneration'?: (string);
  'fullSyncRequired'?: (boolean);
  'redirect'?: (string);
  'generations'?: (_blockmirror_replication_v1_Generations | null);
  'role'?: (string);
  'verdict'?: (string);
  'reason'?: (string);
  'divergentBlocks'?: (Buffer | Uint8Array | string);
}

export interface HandshakeResponse__Output {
  'sessionId': (string);
  'secondaryGeneration': (string);
  'fullSyncRequired': (boolean);
  'redirect': (string);
  'generations': (_blockmirror_replication_v1_Generations__Output | null);
  'role': (string);
  'verdict': (string);
  'reason': (string);
  'divergentBlocks': (Buffer);
}
