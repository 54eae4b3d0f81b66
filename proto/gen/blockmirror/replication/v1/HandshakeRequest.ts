// Original file: blockmirror/replication/v1/replication.proto

import type { Long } from '@grpc/proto-loader';

export interface HandshakeRequest {
  'pairId'?: (string);
  'volumeBytes'?: (number | string | Long);
  'blockSize'?: (number);
  'primaryGeneration'?: (string);
  'syncedSecondaryGeneration'?: (string);
  'mode'?: (string);
}

export interface HandshakeRequest__Output {
  'pairId': (string);
  'volumeBytes': (number);
  'blockSize': (number);
  'primaryGeneration': (string);
  'syncedSecondaryGeneration': (string);
  'mode': (string);
}
