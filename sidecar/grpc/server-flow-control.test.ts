import { describe, expect, it } from '@jest/globals';
import { credentials, Server as GrpcServer, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { BlockFrame__Output } from '../../proto/gen/blockmirror/replication/v1/BlockFrame.js';
import type { FrameAck } from '../../proto/gen/blockmirror/replication/v1/FrameAck.js';
import type { ReplicationServiceClient, ReplicationServiceHandlers } from '../../proto/gen/blockmirror/replication/v1/ReplicationService.js';
import { loadReplicationProto } from './load-proto.js';
import { raiseServerFlowControlWindow } from './server-flow-control.js';

const WINDOW = 8 << 20;
const FRAME_BYTES = 2 << 20;

/**
 * A replication server whose Mirror handler never reads: whatever the client manages to
 * send is what the server's flow-control windows admit.
 */
async function stalledServer(raise: boolean): Promise<{ address: string; stats: { sessions: number; lastLocalWindowSize: number } | null; close(): Promise<void> }> {
  const grpc = new GrpcServer({ 'grpc.max_receive_message_length': 64 << 20 });
  const stats = raise ? raiseServerFlowControlWindow(grpc, WINDOW) : null;
  const calls: ServerDuplexStream<BlockFrame__Output, FrameAck>[] = [];
  const stalled = (call: ServerDuplexStream<BlockFrame__Output, FrameAck>): void => {
    calls.push(call);
    call.pause();
  };
  const unused = (): never => {
    throw new Error('not used');
  };
  const handlers: ReplicationServiceHandlers = { Handshake: unused, Mirror: stalled, Resync: stalled, MarkSynced: unused, CommitGroup: unused, PeerReady: unused };
  grpc.addService(loadReplicationProto().blockmirror.replication.v1.ReplicationService.service, handlers);
  const injector = grpc.createConnectionInjector(ServerCredentials.createInsecure());
  const net: Server = createServer((socket) => injector.injectConnection(socket));
  await new Promise<void>((resolve) => net.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(net.address() as AddressInfo).port}`,
    stats,
    close: async () => {
      for (const c of calls) c.destroy();
      injector.destroy();
      await new Promise<void>((resolve) => net.close(() => resolve()));
      grpc.forceShutdown();
    },
  };
}

/** Writes one large frame on a Mirror stream; true if the client could hand it all to the socket. */
async function frameLeavesClient(address: string, withinMs: number): Promise<boolean> {
  const Ctor = loadReplicationProto().blockmirror.replication.v1.ReplicationService;
  const client: ReplicationServiceClient = new Ctor(address, credentials.createInsecure(), {
    'grpc-node.flow_control_window': WINDOW,
    'grpc.max_send_message_length': 64 << 20,
    'grpc.use_local_subchannel_pool': 1,
  });
  const call = client.Mirror();
  call.on('error', () => undefined);
  try {
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), withinMs);
      call.write({ sessionId: 's', sequence: 1, runs: [], payload: Buffer.alloc(FRAME_BYTES, 7), crc32c: 0, durable: false, group: 0 }, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  } finally {
    call.cancel();
    client.close();
  }
}

describe('raiseServerFlowControlWindow', () => {
  it('lets a client send a frame larger than HTTP/2 default windows to a server that has not read it yet', async () => {
    const server = await stalledServer(true);
    try {
      expect(await frameLeavesClient(server.address, 10_000)).toBe(true);
      expect(server.stats!.sessions).toBeGreaterThanOrEqual(1);
      expect(server.stats!.lastLocalWindowSize).toBeGreaterThanOrEqual(WINDOW);
    } finally {
      await server.close();
    }
  });

  it('is what makes the difference: without it the same frame stays stuck in the client', async () => {
    // The control case: a bounded wait that can only end by the timeout if the default
    // 64 KiB windows hold the frame back, which is the behaviour being fixed.
    const server = await stalledServer(false);
    try {
      expect(await frameLeavesClient(server.address, 1500)).toBe(false);
    } finally {
      await server.close();
    }
  });
});
