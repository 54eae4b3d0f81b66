import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { BlockFrame as _blockmirror_replication_v1_BlockFrame, BlockFrame__Output as _blockmirror_replication_v1_BlockFrame__Output } from './blockmirror/replication/v1/BlockFrame.js';
import type { BlockRun as _blockmirror_replication_v1_BlockRun, BlockRun__Output as _blockmirror_replication_v1_BlockRun__Output } from './blockmirror/replication/v1/BlockRun.js';
import type { CommitGroupRequest as _blockmirror_replication_v1_CommitGroupRequest, CommitGroupRequest__Output as _blockmirror_replication_v1_CommitGroupRequest__Output } from './blockmirror/replication/v1/CommitGroupRequest.js';
import type { CommitGroupResponse as _blockmirror_replication_v1_CommitGroupResponse, CommitGroupResponse__Output as _blockmirror_replication_v1_CommitGroupResponse__Output } from './blockmirror/replication/v1/CommitGroupResponse.js';
import type { FrameAck as _blockmirror_replication_v1_FrameAck, FrameAck__Output as _blockmirror_replication_v1_FrameAck__Output } from './blockmirror/replication/v1/FrameAck.js';
import type { Generations as _blockmirror_replication_v1_Generations, Generations__Output as _blockmirror_replication_v1_Generations__Output } from './blockmirror/replication/v1/Generations.js';
import type { GroupMember as _blockmirror_replication_v1_GroupMember, GroupMember__Output as _blockmirror_replication_v1_GroupMember__Output } from './blockmirror/replication/v1/GroupMember.js';
import type { HandshakeRequest as _blockmirror_replication_v1_HandshakeRequest, HandshakeRequest__Output as _blockmirror_replication_v1_HandshakeRequest__Output } from './blockmirror/replication/v1/HandshakeRequest.js';
import type { HandshakeResponse as _blockmirror_replication_v1_HandshakeResponse, HandshakeResponse__Output as _blockmirror_replication_v1_HandshakeResponse__Output } from './blockmirror/replication/v1/HandshakeResponse.js';
import type { MarkSyncedRequest as _blockmirror_replication_v1_MarkSyncedRequest, MarkSyncedRequest__Output as _blockmirror_replication_v1_MarkSyncedRequest__Output } from './blockmirror/replication/v1/MarkSyncedRequest.js';
import type { MarkSyncedResponse as _blockmirror_replication_v1_MarkSyncedResponse, MarkSyncedResponse__Output as _blockmirror_replication_v1_MarkSyncedResponse__Output } from './blockmirror/replication/v1/MarkSyncedResponse.js';
import type { PeerReadyRequest as _blockmirror_replication_v1_PeerReadyRequest, PeerReadyRequest__Output as _blockmirror_replication_v1_PeerReadyRequest__Output } from './blockmirror/replication/v1/PeerReadyRequest.js';
import type { PeerReadyResponse as _blockmirror_replication_v1_PeerReadyResponse, PeerReadyResponse__Output as _blockmirror_replication_v1_PeerReadyResponse__Output } from './blockmirror/replication/v1/PeerReadyResponse.js';
import type { ReplicationServiceClient as _blockmirror_replication_v1_ReplicationServiceClient, ReplicationServiceDefinition as _blockmirror_replication_v1_ReplicationServiceDefinition } from './blockmirror/replication/v1/ReplicationService.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  blockmirror: {
    replication: {
      v1: {
        BlockFrame: MessageTypeDefinition<_blockmirror_replication_v1_BlockFrame, _blockmirror_replication_v1_BlockFrame__Output>
        BlockRun: MessageTypeDefinition<_blockmirror_replication_v1_BlockRun, _blockmirror_replication_v1_BlockRun__Output>
        CommitGroupRequest: MessageTypeDefinition<_blockmirror_replication_v1_CommitGroupRequest, _blockmirror_replication_v1_CommitGroupRequest__Output>
        CommitGroupResponse: MessageTypeDefinition<_blockmirror_replication_v1_CommitGroupResponse, _blockmirror_replication_v1_CommitGroupResponse__Output>
        FrameAck: MessageTypeDefinition<_blockmirror_replication_v1_FrameAck, _blockmirror_replication_v1_FrameAck__Output>
        Generations: MessageTypeDefinition<_blockmirror_replication_v1_Generations, _blockmirror_replication_v1_Generations__Output>
        GroupMember: MessageTypeDefinition<_blockmirror_replication_v1_GroupMember, _blockmirror_replication_v1_GroupMember__Output>
        HandshakeRequest: MessageTypeDefinition<_blockmirror_replication_v1_HandshakeRequest, _blockmirror_replication_v1_HandshakeRequest__Output>
        HandshakeResponse: MessageTypeDefinition<_blockmirror_replication_v1_HandshakeResponse, _blockmirror_replication_v1_HandshakeResponse__Output>
        MarkSyncedRequest: MessageTypeDefinition<_blockmirror_replication_v1_MarkSyncedRequest, _blockmirror_replication_v1_MarkSyncedRequest__Output>
        MarkSyncedResponse: MessageTypeDefinition<_blockmirror_replication_v1_MarkSyncedResponse, _blockmirror_replication_v1_MarkSyncedResponse__Output>
        PeerReadyRequest: MessageTypeDefinition<_blockmirror_replication_v1_PeerReadyRequest, _blockmirror_replication_v1_PeerReadyRequest__Output>
        PeerReadyResponse: MessageTypeDefinition<_blockmirror_replication_v1_PeerReadyResponse, _blockmirror_replication_v1_PeerReadyResponse__Output>
        ReplicationService: SubtypeConstructor<typeof grpc.Client, _blockmirror_replication_v1_ReplicationServiceClient> & { service: _blockmirror_replication_v1_ReplicationServiceDefinition }
      }
    }
  }
}

