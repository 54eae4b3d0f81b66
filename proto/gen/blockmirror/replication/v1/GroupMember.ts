// Original file: blockmirror/replication/v1/replication.proto

import type { Long } from '@grpc/proto-loader';

export interface GroupMember {
  'pairId'?: (string);
  'sessionId'?: (string);
  'frames'?: (number | string | Long);
}

export interface GroupMember__Output {
  'pairId': (string);
  'sessionId': (string);
  'frames': (number);
}
