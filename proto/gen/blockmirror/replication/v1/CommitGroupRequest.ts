// Original file: blockmirror/replication/v1/replication.proto

import type { GroupMember as _blockmirror_replication_v1_GroupMember, GroupMember__Output as _blockmirror_replication_v1_GroupMember__Output } from '../../../blockmirror/replication/v1/GroupMember.js';
import type { Long } from '@grpc/proto-loader';

export interface CommitGroupRequest {
  'consistencyGroup'?: (string);
  'group'?: (number | string | Long);
  'timeMs'?: (number | string | Long);
  'members'?: (_blockmirror_replication_v1_GroupMember)[];
}

export interface CommitGroupRequest__Output {
  'consistencyGroup': (string);
  'group': (number);
  'timeMs': (number);
  'members': (_blockmirror_replication_v1_GroupMember__Output)[];
}
