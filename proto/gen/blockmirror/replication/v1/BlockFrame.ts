// Original file: blockmirror/replication/v1/replication.proto

import type { BlockRun as _blockmirror_replication_v1_BlockRun, BlockRun__Output as _blockmirror_replication_v1_BlockRun__Output } from '../../../blockmirror/replication/v1/BlockRun.js';
import type { Long } from '@grpc/proto-loader';

export interface BlockFrame {
  'sessionId'?: (string);
  'sequence'?: (number | string | Long);
  'runs'?: (_blockmirror_replication_v1_BlockRun)[];
  'payload'?: (Buffer | Uint8Array | string);
  'crc32c'?: (number);
  'durable'?: (boolean);
  'group'?: (number | string | Long);
}

export interface BlockFrame__Output {
  'sessionId': (string);
  'sequence': (number);
  'runs': (_blockmirror_replication_v1_BlockRun__Output)[];
  'payload': (Buffer);
  'crc32c': (number);
  'durable': (boolean);
  'group': (number);
}
