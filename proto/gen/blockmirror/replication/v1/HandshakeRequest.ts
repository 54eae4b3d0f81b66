// Original file: blockmirror/replication/v1/replication.proto

import type { Long } from '@grpc/proto-loader';

export interface HandshakeRequest {
  'pairId'?: (string);
  'volumeBytes'?: (number | string | Long);
  'blockSize'?: (number);
  'currentGeneration'?: (string);
  'bitmapGeneration'?: (string);
}

export interface HandshakeRequest__Output {
  'pairId': (string);
  'volumeBytes': (number);
  'blockSize': (number);
  'currentGeneration': (string);
  'bitmapGeneration': (string);
}
