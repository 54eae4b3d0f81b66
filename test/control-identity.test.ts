import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client, Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { channelCredentials, type TlsFiles } from '../sidecar/grpc/grpc-credentials.js';
import { loadControlProto, loadReplicationProto } from '../sidecar/grpc/load-proto.js';
import { metricSum, scrapeMetrics } from './helpers/replication-harness.js';
import { runCli } from './helpers/run-cli.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { makeCa, makeSiteIdentities, sidecarIdentityArgs, type SiteIdentities } from './helpers/site-identities.js';
import type { Identity } from './helpers/test-pki.js';

// Issue 19: a CA signature is no authorization. Sites A and B share one CA here (the
// simplest setup, and the one where only identities tell them apart): site B's peer
// certificate, which site A must trust for the peer link, must not reach A's control API.

const HEALTH_CHECK = '/grpc.health.v1.Health/Check';

interface Outcome {
  code: number;
  details: string;
}

/** One unary call with raw bytes or a message, presenting `id`; resolves with its status. */
function call(address: string, tls: TlsFiles, path: string, serialize: (v: unknown) => Buffer, request: unknown): Promise<Outcome> {
  const client = new Client(address, channelCredentials(address, tls), { 'grpc.use_local_subchannel_pool': 1 });
  return new Promise<Outcome>((resolve) => {
    client.makeUnaryRequest(path, serialize, (b: Buffer) => b, request, new Metadata(), { deadline: new Date(Date.now() + 5000) }, (err: ServiceError | null) => {
      client.close();
      resolve(err ? { code: err.code, details: err.details } : { code: GrpcStatus.OK, details: '' });
    });
  });
}

const as = (id: Identity, ca: string): TlsFiles => ({ cert: id.cert, key: id.key, ca });

describe('the control API admits the operator only; the peer port peer identities only', () => {
  let dir: string;
  let a: SiteIdentities;
  let b: SiteIdentities;
  let rogue: SiteIdentities;
  let sc: SidecarProcess | undefined;
  let socket: string;
  const methods = Object.entries(loadControlProto().blockmirror.control.v1.ControlService.service);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-ident-'));
    const shared = await makeCa(dir, 'shared');
    const other = await makeCa(dir, 'other');
    a = await makeSiteIdentities(dir, 'site-a', { ca: shared });
    b = await makeSiteIdentities(dir, 'site-b', { ca: shared });
    rogue = await makeSiteIdentities(dir, 'site-a-forged', { ca: other });
    socket = join(dir, 'control', 'control.sock');
    // As the chart runs it: control port on every address (mutual TLS), and the socket.
    sc = await SidecarProcess.start({ stateDir: join(dir, 'state'), args: ['--control-listen', '0.0.0.0:0', '--control-socket', socket, ...sidecarIdentityArgs(a)] });
  }, 60_000);

  afterAll(async () => {
    await sc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const control = (): string => `127.0.0.1:${sc!.addresses.control.split(':').pop()}`;
  const listPairs = (tls: TlsFiles): Promise<Outcome> => {
    const def = loadControlProto().blockmirror.control.v1.ControlService.service.ListPairs;
    return call(control(), tls, def.path, def.requestSerialize as (v: unknown) => Buffer, {});
  };
  const pairs = async (): Promise<string> => {
    const r = await runCli(['pair', 'list', '-o', 'json', '--control', `unix://${socket}`]);
    expect(r.code).toBe(0);
    return r.stdout.trim();
  };

  it('admits the operator of its own site, and a local admin on the control socket', async () => {
    expect(await listPairs(as(a.operator, a.ca))).toEqual({ code: GrpcStatus.OK, details: '' });
    expect((await call(control(), as(a.operator, a.ca), HEALTH_CHECK, (v) => v as Buffer, Buffer.alloc(0))).code).toBe(GrpcStatus.OK);
    expect(await pairs()).toBe('[]');
    const cli = await runCli(['pair', 'list', '-o', 'json', '--control', control(), '--tls-cert', a.operator.cert, '--tls-key', a.operator.key, '--tls-ca', a.ca]);
    expect(cli.stderr).toBe('');
    expect(JSON.parse(cli.stdout)).toEqual([]);
  });

  it("refuses site B's peer identity on every RPC, health included, with PERMISSION_DENIED", async () => {
    const refusedBefore = metricSum(await scrapeMetrics(sc!.addresses.metrics), 'blockmirror_control_refused_total');
    // What an attacker holding site B's peer credentials would try first: a secondary over a host disk.
    const requests: Record<string, unknown> = { CreatePair: { spec: { name: 'takeover', volumePath: '/dev/sda', role: 'ROLE_SECONDARY' } } };
    expect(methods.length).toBeGreaterThanOrEqual(20);
    const outcomes: Record<string, Outcome> = {};
    for (const [name, def] of methods) {
      expect(def.requestStream || def.responseStream).toBe(false);
      outcomes[name] = await call(control(), as(b.peer, b.ca), def.path, def.requestSerialize as (v: unknown) => Buffer, requests[name] ?? {});
    }
    outcomes.HealthCheck = await call(control(), as(b.peer, b.ca), HEALTH_CHECK, (v) => v as Buffer, Buffer.alloc(0));
    const denied = {
      code: GrpcStatus.PERMISSION_DENIED,
      details: 'the control API admits only the operator (spiffe://blockmirror/site-a/operator) and local callers on the control socket; the caller is spiffe://blockmirror/site-b/peer',
    };
    expect(outcomes).toEqual(Object.fromEntries([...methods.map(([n]) => n), 'HealthCheck'].map((n) => [n, denied])));
    expect(await pairs()).toBe('[]');
    expect(metricSum(await scrapeMetrics(sc!.addresses.metrics), 'blockmirror_control_refused_total')).toBe(refusedBefore + methods.length + 1);
  });

  it("refuses the CA's other identities: site B's operator, site A's own peer link, a server certificate", async () => {
    const b1 = await listPairs(as(b.operator, b.ca));
    expect(b1.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(b1.details).toMatch(/the caller is spiffe:\/\/blockmirror\/site-b\/operator$/);
    const ownPeer = await listPairs(as(a.peer, a.ca));
    expect(ownPeer.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(ownPeer.details).toMatch(/the caller is spiffe:\/\/blockmirror\/site-a\/peer$/);
    // serverAuth only: refused as a client certificate, or by identity; never served.
    expect((await listPairs(as(a.control, a.ca))).code).not.toBe(GrpcStatus.OK);
    expect(await pairs()).toBe('[]');
  });

  it('refuses a certificate from another CA on both ports, even one naming site A', async () => {
    const forged = await listPairs(as(rogue.operator, a.ca));
    expect(forged.code).toBe(GrpcStatus.UNAVAILABLE);
    const tlsBefore = metricSum(await scrapeMetrics(sc!.addresses.metrics), 'blockmirror_peer_refused_total', { reason: 'tls' });
    const def = loadReplicationProto().blockmirror.replication.v1.ReplicationService.service.Handshake;
    const hs = await call(sc!.addresses.peer, as(rogue.peer, a.ca), def.path, def.requestSerialize as (v: unknown) => Buffer, { pairId: 'any' });
    expect(hs.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(metricSum(await scrapeMetrics(sc!.addresses.metrics), 'blockmirror_peer_refused_total', { reason: 'tls' })).toBeGreaterThan(tlsBefore);
  });

  it('the peer port admits peer identities only: the operator is turned away there', async () => {
    const def = loadReplicationProto().blockmirror.replication.v1.ReplicationService.service.Handshake;
    const handshake = (tls: TlsFiles): Promise<Outcome> => call(sc!.addresses.peer, tls, def.path, def.requestSerialize as (v: unknown) => Buffer, { pairId: 'none-here' });
    const before = metricSum(await scrapeMetrics(sc!.addresses.metrics), 'blockmirror_peer_refused_total', { reason: 'identity' });
    expect((await handshake(as(a.operator, a.ca))).code).toBe(GrpcStatus.UNAVAILABLE);
    expect(metricSum(await scrapeMetrics(sc!.addresses.metrics), 'blockmirror_peer_refused_total', { reason: 'identity' })).toBe(before + 1);
    // Site B's peer identity reaches the replication service (which holds no such pair).
    expect(await handshake(as(b.peer, b.ca))).toEqual({ code: GrpcStatus.NOT_FOUND, details: 'no secondary pair "none-here" here' });
  });
});

describe("with the remote site's CA given, the peer port trusts it instead of its own", () => {
  let dir: string;
  let sc: SidecarProcess | undefined;
  let a: SiteIdentities;
  let neighbour: SiteIdentities;
  let remote: SiteIdentities;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-ident-ca-'));
    const [own, theirs] = [await makeCa(dir, 'site-a'), await makeCa(dir, 'site-b')];
    a = await makeSiteIdentities(dir, 'site-a', { ca: own });
    // Another node of site A: same CA, same site, its own key pair.
    mkdirSync(join(dir, 'n2'));
    neighbour = await makeSiteIdentities(join(dir, 'n2'), 'site-a', { ca: own });
    remote = await makeSiteIdentities(dir, 'site-b', { ca: theirs });
    sc = await SidecarProcess.start({ stateDir: join(dir, 'state'), args: [...sidecarIdentityArgs(a), '--peer-trust-ca', theirs.ca] });
  }, 60_000);

  afterAll(async () => {
    await sc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a neighbour's peer key at TLS and lets the remote site's in", async () => {
    const def = loadReplicationProto().blockmirror.replication.v1.ReplicationService.service.Handshake;
    const handshake = (id: Identity, ca: string): Promise<Outcome> => call(sc!.addresses.peer, as(id, ca), def.path, def.requestSerialize as (v: unknown) => Buffer, { pairId: 'none-here' });
    const before = metricSum(await scrapeMetrics(sc!.addresses.metrics), 'blockmirror_peer_refused_total', { reason: 'tls' });
    expect((await handshake(neighbour.peer, a.ca)).code).toBe(GrpcStatus.UNAVAILABLE);
    expect(metricSum(await scrapeMetrics(sc!.addresses.metrics), 'blockmirror_peer_refused_total', { reason: 'tls' })).toBe(before + 1);
    expect(await handshake(remote.peer, a.ca)).toEqual({ code: GrpcStatus.NOT_FOUND, details: 'no secondary pair "none-here" here' });
    // The remote CA is trusted for the peer link only: its operator is no operator here.
    expect((await call(`127.0.0.1:${sc!.addresses.control.split(':').pop()}`, as(remote.operator, a.ca), HEALTH_CHECK, (v) => v as Buffer, Buffer.alloc(0))).code).toBe(GrpcStatus.UNAVAILABLE);
  });
});
