// Original file: blockmirror/replication/v1/replication.proto

import type { Long } from '@grpc/proto-loader';

export interface BlockRun {
  'offset'?: (number | string | Long);
  'length'?: (number);
  'zero'?: (boolean);
}

export interface BlockRun__Output {
  'offset': (number);
  'length': (number);
  'zero': (boolean);
}
