import { makeGenericClientConstructor, type ChannelCredentials, type ChannelOptions, type ClientDuplexStream, type Metadata, type ServiceDefinition } from '@grpc/grpc-js';
import type { BlockFrame__Output } from '../../../proto/gen/blockmirror/replication/v1/BlockFrame.js';
import type { FrameAck__Output } from '../../../proto/gen/blockmirror/replication/v1/FrameAck.js';
import type { ReplicationServiceClient, ReplicationServiceDefinition } from '../../../proto/gen/blockmirror/replication/v1/ReplicationService.js';
import { loadReplicationProto } from '../../grpc/load-proto.js';
import { decodeBlockFrame, encodeBlockFrame, type OutgoingBlockFrame } from './block-frame-codec.js';

/**
 * The replication service as both sides use it: replication.proto's definition with the
 * data streams' requests (BlockFrame) written and read by our own codec instead of
 * protobufjs. The bytes on the wire are the same protobuf; the codec only spares the
 * copies (the payload goes from the slab chunks into the message once, and is read back
 * as a view of it). Every other message keeps protobufjs.
 */
let cached: ServiceDefinition | undefined;

export function peerServiceDefinition(): ServiceDefinition {
  if (cached !== undefined) return cached;
  const base = loadReplicationProto().blockmirror.replication.v1.ReplicationService.service as ReplicationServiceDefinition & ServiceDefinition;
  const raw = <K extends 'Mirror' | 'Resync'>(m: K) => ({
    ...base[m],
    requestSerialize: (f: OutgoingBlockFrame): Buffer => encodeBlockFrame(f),
    requestDeserialize: (b: Buffer): BlockFrame__Output => decodeBlockFrame(b),
  });
  cached = { ...base, Mirror: raw('Mirror'), Resync: raw('Resync') };
  return cached;
}

/** A client of the peer service: its Mirror and Resync streams take OutgoingBlockFrame. */
export type PeerServiceClient = Omit<ReplicationServiceClient, 'Mirror' | 'mirror' | 'Resync' | 'resync'> & {
  Mirror(metadata: Metadata): ClientDuplexStream<OutgoingBlockFrame, FrameAck__Output>;
  Resync(metadata: Metadata): ClientDuplexStream<OutgoingBlockFrame, FrameAck__Output>;
};

type PeerClientConstructor = new (address: string, credentials: ChannelCredentials, options?: ChannelOptions) => PeerServiceClient;
let ctor: PeerClientConstructor | undefined;

export function peerServiceClient(address: string, credentials: ChannelCredentials, options: ChannelOptions): PeerServiceClient {
  ctor ??= makeGenericClientConstructor(peerServiceDefinition(), 'ReplicationService') as unknown as PeerClientConstructor;
  return new ctor(address, credentials, options);
}
