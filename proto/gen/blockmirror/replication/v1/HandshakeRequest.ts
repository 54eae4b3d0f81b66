// Original file: blockmirror/replication/v1/replication.proto

import type { Generations as _blockmirror_replication_v1_Generations, Generations__Output as _blockmirror_replication_v1_Generations__Output } from '../../../blockmirror/replication/v1/Generations.js';
import type { Long } from '@grpc/proto-loader';

export interface HandshakeRequest {
  'pairId'?: (string);
  'volumeBytes'?: (number | string | Long);
  'blockSize'?: (number);
  'primaryGeneration'?: (string);
  'syncedSecondaryGeneration'?: (string);
  'mode'?: (string);
  'generations'?: (_blockmirror_replication_v1_Generations | null);
}

export interface HandshakeRequest__Output {
  'pairId': (string);
  'volumeBytes': (number);
  'blockSize': (number);
  'primaryGeneration': (string);
  'syncedSecondaryGeneration': (string);
  'mode': (string);
  'generations': (_blockmirror_replication_v1_Generations__Output | null);
}
