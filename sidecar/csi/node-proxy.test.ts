// The proxy's forwarding, against a stand-in driver that records what reaches it:
// deadline, metadata and the driver's status with its trailers must cross the proxy
// unchanged. (The real driver behind the proxy: test/csi-node-proxy.test.ts, csi-sanity.)
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { credentials, Metadata, Server, status as GrpcStatus, type ServiceError, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeGetCapabilitiesResponse__Output } from '../../proto/gen/csi/v1/NodeGetCapabilitiesResponse.js';
import { loadCsiProto, type CsiProto } from '../grpc/load-proto.js';
import { createLogger } from '../log/create-logger.js';
import { listenCsi, shutdownServer } from './csi-endpoint.js';
import { NodeProxy } from './node-proxy.js';
import { resolveCsiProtoDir } from './resolve-csi-proto-dir.js';

describe('NodeProxy forwarding', () => {
  let dir: string;
  let csi: CsiProto;
  let driver: Server;
  let proxy: NodeProxy;
  const seen: { method: string; deadline: number; trace: unknown[] }[] = [];

  beforeAll(async () => {
    csi = loadCsiProto(await resolveCsiProtoDir());
    dir = await mkdtemp(join(tmpdir(), 'bm-node-proxy-'));
    driver = new Server();
    const record = (method: string, call: { getDeadline(): Date | number; metadata: Metadata }): void => {
      const d = call.getDeadline();
      seen.push({ method, deadline: d instanceof Date ? d.getTime() : d, trace: call.metadata.get('x-trace') });
    };
    // A driver without STAGE_UNSTAGE_VOLUME whose NodeGetInfo always fails.
    const node: UntypedServiceImplementation = {
      NodeGetInfo: (call: { getDeadline(): Date | number; metadata: Metadata }, cb: (err: Partial<ServiceError>) => void) => {
        record('NodeGetInfo', call);
        const trailers = new Metadata();
        trailers.set('x-driver-detail', 'disk 3 offline');
        cb({ code: GrpcStatus.RESOURCE_EXHAUSTED, details: 'no room on node', metadata: trailers });
      },
      NodeGetCapabilities: (call: { getDeadline(): Date | number; metadata: Metadata }, cb: (err: null, res: object) => void) => {
        record('NodeGetCapabilities', call);
        cb(null, { capabilities: [{ rpc: { type: 'GET_VOLUME_STATS' } }] });
      },
      NodeStageVolume: (call: { getDeadline(): Date | number; metadata: Metadata }, cb: (err: null, res: object) => void) => {
        record('NodeStageVolume', call);
        cb(null, {});
      },
    };
    driver.addService(csi.grpc.csi.v1.Node.service, node);
    await listenCsi(driver, `unix://${dir}/driver.sock`);
    proxy = await NodeProxy.start({ csi, endpoint: `unix://${dir}/proxy.sock`, driver: `unix://${dir}/driver.sock`, stateDir: join(dir, 'state'), logger: createLogger({ level: 'error' }) });
  });

  afterAll(async () => {
    await proxy?.stop();
    if (driver !== undefined) await shutdownServer(driver);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const client = () => new csi.grpc.csi.v1.Node(`unix://${dir}/proxy.sock`, credentials.createInsecure());

  it("passes the caller's deadline and metadata on, and the driver's status, message and trailers back", async () => {
    const c = client();
    const md = new Metadata();
    md.set('x-trace', 'req-7');
    const deadline = Date.now() + 7000;
    const err = await new Promise<ServiceError | null>((resolve) => c.NodeGetInfo({}, md, { deadline }, (e) => resolve(e)));
    c.close();
    expect(err).toMatchObject({ code: GrpcStatus.RESOURCE_EXHAUSTED, details: 'no room on node' });
    expect(err!.metadata.get('x-driver-detail')).toEqual(['disk 3 offline']);
    const got = seen.find((s) => s.method === 'NodeGetInfo')!;
    expect(got.trace).toEqual(['req-7']);
    // The deadline travels as a timeout: the driver sees the caller's, not a longer one of the proxy's.
    expect(got.deadline).toBeLessThanOrEqual(deadline + 50);
    expect(got.deadline).toBeGreaterThan(deadline - 2000);
  });

  it('advertises staging for a driver without it, and stages volumes that do not opt in as a no-op', async () => {
    const c = client();
    const caps = await new Promise<NodeGetCapabilitiesResponse__Output | undefined>((resolve, reject) => c.NodeGetCapabilities({}, (e, r) => (e ? reject(e) : resolve(r))));
    expect(caps!.capabilities.map((x) => x.rpc?.type)).toEqual(['GET_VOLUME_STATS', 'STAGE_UNSTAGE_VOLUME']);
    await new Promise<void>((resolve, reject) =>
      c.NodeStageVolume(
        { volumeId: 'v1', stagingTargetPath: join(dir, 'staging'), volumeCapability: { mount: {}, accessMode: { mode: 'SINGLE_NODE_WRITER' } } },
        (e) => (e ? reject(e) : resolve()),
      ),
    );
    c.close();
    expect(seen.some((s) => s.method === 'NodeStageVolume')).toBe(false);
  });

  it('answers methods the driver does not implement with its UNIMPLEMENTED', async () => {
    const c = client();
    const err = await new Promise<ServiceError | null>((resolve) => c.NodeExpandVolume({ volumeId: 'v1', volumePath: '/x' }, (e) => resolve(e)));
    c.close();
    expect(err?.code).toBe(GrpcStatus.UNIMPLEMENTED);
  });
});
