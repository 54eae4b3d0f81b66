// Original file: blockmirror/replication/v1/replication.proto

import type { Generations as _blockmirror_replication_v1_Generations, Generations__Output as _blockmirror_replication_v1_Generations__Output } from '../../../blockmirror/replication/v1/Generations.js';

export interface MarkSyncedRequest {
  'pairId'?: (string);
  'sessionId'?: (string);
  'generations'?: (_blockmirror_replication_v1_Generations | null);
  'primaryDemoting'?: (boolean);
}

export interface MarkSyncedRequest__Output {
  'pairId': (string);
  'sessionId': (string);
  'generations': (_blockmirror_replication_v1_Generations__Output | null);
  'primaryDemoting': (boolean);
}
