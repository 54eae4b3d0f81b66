// Original file: blockmirror/replication/v1/replication.proto

import type { Long } from '@grpc/proto-loader';

export interface FrameAck {
  'sequence'?: (number | string | Long);
  'error'?: (string);
}

export interface FrameAck__Output {
  'sequence': (number);
  'error': (string);
}
