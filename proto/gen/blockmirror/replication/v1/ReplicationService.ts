// Original file: blockmirror/replication/v1/replication.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { BlockFrame as _blockmirror_replication_v1_BlockFrame, BlockFrame__Output as _blockmirror_replication_v1_BlockFrame__Output } from '../../../blockmirror/replication/v1/BlockFrame.js';
import type { CommitGroupRequest as _blockmirror_replication_v1_CommitGroupRequest, CommitGroupRequest__Output as _blockmirror_replication_v1_CommitGroupRequest__Output } from '../../../blockmirror/replication/v1/CommitGroupRequest.js';
import type { CommitGroupResponse as _blockmirror_replication_v1_CommitGroupResponse, CommitGroupResponse__Output as _blockmirror_replication_v1_CommitGroupResponse__Output } from '../../../blockmirror/replication/v1/CommitGroupResponse.js';
import type { FrameAck as _blockmirror_replication_v1_FrameAck, FrameAck__Output as _blockmirror_replication_v1_FrameAck__Output } from '../../../blockmirror/replication/v1/FrameAck.js';
import type { HandshakeRequest as _blockmirror_replication_v1_HandshakeRequest, HandshakeRequest__Output as _blockmirror_replication_v1_HandshakeRequest__Output } from '../../../blockmirror/replication/v1/HandshakeRequest.js';
import type { HandshakeResponse as _blockmirror_replication_v1_HandshakeResponse, HandshakeResponse__Output as _blockmirror_replication_v1_HandshakeResponse__Output } from '../../../blockmirror/replication/v1/HandshakeResponse.js';
import type { MarkSyncedRequest as _blockmirror_replication_v1_MarkSyncedRequest, MarkSyncedRequest__Output as _blockmirror_replication_v1_MarkSyncedRequest__Output } from '../../../blockmirror/replication/v1/MarkSyncedRequest.js';
import type { MarkSyncedResponse as _blockmirror_replication_v1_MarkSyncedResponse, MarkSyncedResponse__Output as _blockmirror_replication_v1_MarkSyncedResponse__Output } from '../../../blockmirror/replication/v1/MarkSyncedResponse.js';
import type { PeerReadyRequest as _blockmirror_replication_v1_PeerReadyRequest, PeerReadyRequest__Output as _blockmirror_replication_v1_PeerReadyRequest__Output } from '../../../blockmirror/replication/v1/PeerReadyRequest.js';
import type { PeerReadyResponse as _blockmirror_replication_v1_PeerReadyResponse, PeerReadyResponse__Output as _blockmirror_replication_v1_PeerReadyResponse__Output } from '../../../blockmirror/replication/v1/PeerReadyResponse.js';

export interface ReplicationServiceClient extends grpc.Client {
  CommitGroup(argument: _blockmirror_replication_v1_CommitGroupRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_CommitGroupResponse__Output>): grpc.ClientUnaryCall;
  CommitGroup(argument: _blockmirror_replication_v1_CommitGroupRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_replication_v1_CommitGroupResponse__Output>): grpc.ClientUnaryCall;
  CommitGroup(argument: _blockmirror_replication_v1_CommitGroupRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_CommitGroupResponse__Output>): grpc.ClientUnaryCall;
  CommitGroup(argument: _blockmirror_replication_v1_CommitGroupRequest, callback: grpc.requestCallback<_blockmirror_replication_v1_CommitGroupResponse__Output>): grpc.ClientUnaryCall;
  commitGroup(argument: _blockmirror_replication_v1_CommitGroupRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_CommitGroupResponse__Output>): grpc.ClientUnaryCall;
  commitGroup(argument: _blockmirror_replication_v1_CommitGroupRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_replication_v1_CommitGroupResponse__Output>): grpc.ClientUnaryCall;
  commitGroup(argument: _blockmirror_replication_v1_CommitGroupRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_CommitGroupResponse__Output>): grpc.ClientUnaryCall;
  commitGroup(argument: _blockmirror_replication_v1_CommitGroupRequest, callback: grpc.requestCallback<_blockmirror_replication_v1_CommitGroupResponse__Output>): grpc.ClientUnaryCall;
  
  Handshake(argument: _blockmirror_replication_v1_HandshakeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_HandshakeResponse__Output>): grpc.ClientUnaryCall;
  Handshake(argument: _blockmirror_replication_v1_HandshakeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_replication_v1_HandshakeResponse__Output>): grpc.ClientUnaryCall;
  Handshake(argument: _blockmirror_replication_v1_HandshakeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_HandshakeResponse__Output>): grpc.ClientUnaryCall;
  Handshake(argument: _blockmirror_replication_v1_HandshakeRequest, callback: grpc.requestCallback<_blockmirror_replication_v1_HandshakeResponse__Output>): grpc.ClientUnaryCall;
  handshake(argument: _blockmirror_replication_v1_HandshakeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_HandshakeResponse__Output>): grpc.ClientUnaryCall;
  handshake(argument: _blockmirror_replication_v1_HandshakeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_replication_v1_HandshakeResponse__Output>): grpc.ClientUnaryCall;
  handshake(argument: _blockmirror_replication_v1_HandshakeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_HandshakeResponse__Output>): grpc.ClientUnaryCall;
  handshake(argument: _blockmirror_replication_v1_HandshakeRequest, callback: grpc.requestCallback<_blockmirror_replication_v1_HandshakeResponse__Output>): grpc.ClientUnaryCall;
  
  MarkSynced(argument: _blockmirror_replication_v1_MarkSyncedRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_MarkSyncedResponse__Output>): grpc.ClientUnaryCall;
  MarkSynced(argument: _blockmirror_replication_v1_MarkSyncedRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_replication_v1_MarkSyncedResponse__Output>): grpc.ClientUnaryCall;
  MarkSynced(argument: _blockmirror_replication_v1_MarkSyncedRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_MarkSyncedResponse__Output>): grpc.ClientUnaryCall;
  MarkSynced(argument: _blockmirror_replication_v1_MarkSyncedRequest, callback: grpc.requestCallback<_blockmirror_replication_v1_MarkSyncedResponse__Output>): grpc.ClientUnaryCall;
  markSynced(argument: _blockmirror_replication_v1_MarkSyncedRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_MarkSyncedResponse__Output>): grpc.ClientUnaryCall;
  markSynced(argument: _blockmirror_replication_v1_MarkSyncedRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_replication_v1_MarkSyncedResponse__Output>): grpc.ClientUnaryCall;
  markSynced(argument: _blockmirror_replication_v1_MarkSyncedRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_MarkSyncedResponse__Output>): grpc.ClientUnaryCall;
  markSynced(argument: _blockmirror_replication_v1_MarkSyncedRequest, callback: grpc.requestCallback<_blockmirror_replication_v1_MarkSyncedResponse__Output>): grpc.ClientUnaryCall;
  
  Mirror(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_blockmirror_replication_v1_BlockFrame, _blockmirror_replication_v1_FrameAck__Output>;
  Mirror(options?: grpc.CallOptions): grpc.ClientDuplexStream<_blockmirror_replication_v1_BlockFrame, _blockmirror_replication_v1_FrameAck__Output>;
  mirror(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_blockmirror_replication_v1_BlockFrame, _blockmirror_replication_v1_FrameAck__Output>;
  mirror(options?: grpc.CallOptions): grpc.ClientDuplexStream<_blockmirror_replication_v1_BlockFrame, _blockmirror_replication_v1_FrameAck__Output>;
  
  PeerReady(argument: _blockmirror_replication_v1_PeerReadyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_PeerReadyResponse__Output>): grpc.ClientUnaryCall;
  PeerReady(argument: _blockmirror_replication_v1_PeerReadyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_replication_v1_PeerReadyResponse__Output>): grpc.ClientUnaryCall;
  PeerReady(argument: _blockmirror_replication_v1_PeerReadyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_PeerReadyResponse__Output>): grpc.ClientUnaryCall;
  PeerReady(argument: _blockmirror_replication_v1_PeerReadyRequest, callback: grpc.requestCallback<_blockmirror_replication_v1_PeerReadyResponse__Output>): grpc.ClientUnaryCall;
  peerReady(argument: _blockmirror_replication_v1_PeerReadyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_PeerReadyResponse__Output>): grpc.ClientUnaryCall;
  peerReady(argument: _blockmirror_replication_v1_PeerReadyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_replication_v1_PeerReadyResponse__Output>): grpc.ClientUnaryCall;
  peerReady(argument: _blockmirror_replication_v1_PeerReadyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_replication_v1_PeerReadyResponse__Output>): grpc.ClientUnaryCall;
  peerReady(argument: _blockmirror_replication_v1_PeerReadyRequest, callback: grpc.requestCallback<_blockmirror_replication_v1_PeerReadyResponse__Output>): grpc.ClientUnaryCall;
  
  Resync(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_blockmirror_replication_v1_BlockFrame, _blockmirror_replication_v1_FrameAck__Output>;
  Resync(options?: grpc.CallOptions): grpc.ClientDuplexStream<_blockmirror_replication_v1_BlockFrame, _blockmirror_replication_v1_FrameAck__Output>;
  resync(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_blockmirror_replication_v1_BlockFrame, _blockmirror_replication_v1_FrameAck__Output>;
  resync(options?: grpc.CallOptions): grpc.ClientDuplexStream<_blockmirror_replication_v1_BlockFrame, _blockmirror_replication_v1_FrameAck__Output>;
  
}

export interface ReplicationServiceHandlers extends grpc.UntypedServiceImplementation {
  CommitGroup: grpc.handleUnaryCall<_blockmirror_replication_v1_CommitGroupRequest__Output, _blockmirror_replication_v1_CommitGroupResponse>;
  
  Handshake: grpc.handleUnaryCall<_blockmirror_replication_v1_HandshakeRequest__Output, _blockmirror_replication_v1_HandshakeResponse>;
  
  MarkSynced: grpc.handleUnaryCall<_blockmirror_replication_v1_MarkSyncedRequest__Output, _blockmirror_replication_v1_MarkSyncedResponse>;
  
  Mirror: grpc.handleBidiStreamingCall<_blockmirror_replication_v1_BlockFrame__Output, _blockmirror_replication_v1_FrameAck>;
  
  PeerReady: grpc.handleUnaryCall<_blockmirror_replication_v1_PeerReadyRequest__Output, _blockmirror_replication_v1_PeerReadyResponse>;
  
  Resync: grpc.handleBidiStreamingCall<_blockmirror_replication_v1_BlockFrame__Output, _blockmirror_replication_v1_FrameAck>;
  
}

export interface ReplicationServiceDefinition extends grpc.ServiceDefinition {
  CommitGroup: MethodDefinition<_blockmirror_replication_v1_CommitGroupRequest, _blockmirror_replication_v1_CommitGroupResponse, _blockmirror_replication_v1_CommitGroupRequest__Output, _blockmirror_replication_v1_CommitGroupResponse__Output>
  Handshake: MethodDefinition<_blockmirror_replication_v1_HandshakeRequest, _blockmirror_replication_v1_HandshakeResponse, _blockmirror_replication_v1_HandshakeRequest__Output, _blockmirror_replication_v1_HandshakeResponse__Output>
  MarkSynced: MethodDefinition<_blockmirror_replication_v1_MarkSyncedRequest, _blockmirror_replication_v1_MarkSyncedResponse, _blockmirror_replication_v1_MarkSyncedRequest__Output, _blockmirror_replication_v1_MarkSyncedResponse__Output>
  Mirror: MethodDefinition<_blockmirror_replication_v1_BlockFrame, _blockmirror_replication_v1_FrameAck, _blockmirror_replication_v1_BlockFrame__Output, _blockmirror_replication_v1_FrameAck__Output>
  PeerReady: MethodDefinition<_blockmirror_replication_v1_PeerReadyRequest, _blockmirror_replication_v1_PeerReadyResponse, _blockmirror_replication_v1_PeerReadyRequest__Output, _blockmirror_replication_v1_PeerReadyResponse__Output>
  Resync: MethodDefinition<_blockmirror_replication_v1_BlockFrame, _blockmirror_replication_v1_FrameAck, _blockmirror_replication_v1_BlockFrame__Output, _blockmirror_replication_v1_FrameAck__Output>
}
