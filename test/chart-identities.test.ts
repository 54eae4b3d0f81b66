import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client, Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ControlClient } from '../sidecar/control/control-client.js';
import { pairToJson, type PairJson } from '../sidecar/control/pair-json.js';
import { channelCredentials, type TlsFiles } from '../sidecar/grpc/grpc-credentials.js';
import { loadControlProto } from '../sidecar/grpc/load-proto.js';
import { CHART, OPERATOR_NAMESPACE, RELEASE } from './helpers/kube-site.js';
import { metricSum, randomFile, scrapeMetrics, sha256File, sparseFile } from './helpers/replication-harness.js';
import { runOk } from './helpers/run-cli.js';
import { REPO_ROOT, SidecarProcess } from './helpers/sidecar-process.js';
import { makeCa, type SiteCa } from './helpers/site-identities.js';
import { issueCertificate } from './helpers/test-pki.js';
import { waitFor } from './helpers/wait-for.js';

// Issue 19 with the chart's own certificates: each site's Certificates and the flags its
// workloads get are rendered by `helm template`, the certificates issued exactly as the
// Certificates ask (names, URIs, usages) and mounted where the pods would find them, and
// real sidecars run with those flags. Sites A, B and C share one CA: the worst case,
// where only the identities keep them apart.

const ALL_FEATURES = join(REPO_ROOT, 'test', 'fixtures', 'chart-all-features.yaml');
const CONTROL_NAME = 'sidecars.site-a.example.com';
const MiB = 1 << 20;

interface CertificateJson {
  spec: { secretName: string; commonName: string; usages: string[]; uris?: string[]; dnsNames?: string[] };
}
interface Workload {
  spec: { template: { spec: { containers: { name: string; args: string[]; volumeMounts?: { name: string; mountPath: string }[] }[]; volumes?: { name: string; secret?: { secretName: string } }[] } } };
}

/** A site as the chart renders it: its Secrets as files, and its workloads' TLS flags on those files. */
interface RenderedSite {
  sidecarArgs: string[];
  operatorTls: TlsFiles;
  controlServerName: string;
  secrets: Map<string, string>;
}

async function renderSite(dir: string, helm: string, site: string, remote: string, ca: SiteCa): Promise<RenderedSite> {
  const out = await runOk(helm, ['template', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE, '-f', ALL_FEATURES, '--set', `tls.site=${site}`, '--set', `tls.remoteSite=${remote}`], { timeoutMs: 60_000 });
  const docs = parseAllDocuments(out).map((d) => d.toJSON() as { kind?: string } | null).filter((d): d is { kind: string } => d !== null && d.kind !== undefined);
  const secrets = new Map<string, string>();
  for (const c of docs.filter((d) => d.kind === 'Certificate') as unknown as CertificateJson[]) {
    const s = c.spec;
    const sdir = join(dir, site, s.secretName);
    mkdirSync(sdir, { recursive: true });
    const san = [...(s.dnsNames ?? []).map((n) => `DNS:${n}`), ...(s.uris ?? []).map((u) => `URI:${u}`)].join(',');
    const eku = s.usages.map((u) => ({ 'server auth': 'serverAuth', 'client auth': 'clientAuth' })[u]).join(',');
    // Written as tls.crt and tls.key, beside ca.crt: what cert-manager puts in the Secret.
    await issueCertificate(sdir, ca, { name: 'tls', ext: `subjectAltName=${san}\nextendedKeyUsage=${eku}\n` });
    writeFileSync(join(sdir, 'ca.crt'), readFileSync(ca.ca));
    secrets.set(s.secretName, sdir);
  }
  // A path under a container's Secret mount, as the file it is here.
  const files = (w: Workload, container: string) => (path: string): string => {
    const c = w.spec.template.spec.containers.find((x) => x.name === container)!;
    const m = c.volumeMounts?.find((v) => path.startsWith(`${v.mountPath}/`));
    const secret = w.spec.template.spec.volumes?.find((v) => v.name === m?.name)?.secret?.secretName;
    if (m === undefined || secret === undefined || !secrets.has(secret)) throw new Error(`${path} is on no mounted Secret of ${container}`);
    return join(secrets.get(secret)!, path.slice(m.mountPath.length + 1));
  };
  const ds = docs.find((d) => d.kind === 'DaemonSet') as unknown as Workload;
  const op = docs.find((d) => d.kind === 'Deployment') as unknown as Workload;
  const onFiles = (w: Workload, container: string, args: string[]): string[] => args.map((a) => a.replace(/^(--[a-z-]+)=(\/etc\/blockmirror\/.*)$/, (_, flag: string, p: string) => `${flag}=${files(w, container)(p)}`));
  const identityFlags = /^--(tls-|peer-cert|peer-key|peer-ca|operator-identity|remote-peer-identity|peer-server-name)/;
  const sidecarArgs = onFiles(ds, 'sidecar', ds.spec.template.spec.containers.find((c) => c.name === 'sidecar')!.args.filter((a) => identityFlags.test(a)));
  const opArgs = op.spec.template.spec.containers[0]!.args;
  const flag = (name: string): string => onFiles(op, 'operator', opArgs).find((a) => a.startsWith(`${name}=`))!.slice(name.length + 1);
  return { sidecarArgs, operatorTls: { cert: flag('--tls-cert'), key: flag('--tls-key'), ca: flag('--tls-ca') }, controlServerName: flag('--control-server-name'), secrets };
}

interface Outcome {
  code: number;
  details: string;
}

function call(address: string, tls: TlsFiles, serverName: string, path: string, serialize: (v: unknown) => Buffer): Promise<Outcome> {
  const client = new Client(address, channelCredentials(address, tls), { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName, 'grpc.use_local_subchannel_pool': 1 });
  return new Promise<Outcome>((resolve) => {
    client.makeUnaryRequest(path, serialize, (b: Buffer) => b, {}, new Metadata(), { deadline: new Date(Date.now() + 5000) }, (err: ServiceError | null) => {
      client.close();
      resolve(err ? { code: err.code, details: err.details } : { code: GrpcStatus.OK, details: '' });
    });
  });
}

describe("the chart's own certificates", () => {
  let dir: string;
  const sites: Record<'a' | 'b' | 'c' | 'rogue', RenderedSite> = {} as Record<'a' | 'b' | 'c' | 'rogue', RenderedSite>;
  const sc: Partial<Record<'a' | 'b' | 'c', SidecarProcess>> = {};
  const clients: ControlClient[] = [];

  const operator = (k: 'a' | 'b' | 'c'): ControlClient => {
    const c = new ControlClient(`127.0.0.1:${sc[k]!.addresses.control.split(':').pop()}`, {
      tls: sites[k].operatorTls,
      serverName: sites[k].controlServerName,
      expectServer: { role: 'sidecar-control', uri: `spiffe://blockmirror/site-${k}/sidecar-control` },
    });
    clients.push(c);
    return c;
  };
  const peerTls = (k: 'a' | 'b' | 'c' | 'rogue'): TlsFiles => {
    const d = sites[k].secrets.get(`${RELEASE}-peer-tls`)!;
    return { cert: join(d, 'tls.crt'), key: join(d, 'tls.key'), ca: join(d, 'ca.crt') };
  };
  const controlAddress = (k: 'a' | 'b' | 'c'): string => `127.0.0.1:${sc[k]!.addresses.control.split(':').pop()}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-chart-ident-'));
    const helm = join((await runOk('bash', [join(REPO_ROOT, 'hack', 'control-plane.sh'), 'bin'])).trim(), 'helm');
    const shared = await makeCa(dir, 'shared');
    const other = await makeCa(dir, 'other');
    sites.a = await renderSite(dir, helm, 'site-a', 'site-b', shared);
    sites.b = await renderSite(dir, helm, 'site-b', 'site-a', shared);
    sites.c = await renderSite(dir, helm, 'site-c', 'site-b', shared);
    // Site A's certificates to the letter, from a CA nobody trusts.
    sites.rogue = await renderSite(join(dir, 'rogue'), helm, 'site-a', 'site-b', other);
    for (const k of ['a', 'b', 'c'] as const) {
      // The chart binds every address (mutual TLS); here on port 0.
      sc[k] = await SidecarProcess.start({ stateDir: join(dir, `state-${k}`), args: [...sites[k].sidecarArgs, '--control-listen', '0.0.0.0:0'] });
    }
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(Object.values(sc).map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('the workloads get what the Certificates issue: the control server, the peer link and the operator, one identity each', () => {
    expect(sites.a.sidecarArgs).toEqual(expect.arrayContaining(['--operator-identity=spiffe://blockmirror/site-a/operator', '--remote-peer-identity=spiffe://blockmirror/site-b/peer']));
    expect([...sites.a.secrets.keys()].sort()).toEqual([`${RELEASE}-control-tls`, `${RELEASE}-operator-tls`, `${RELEASE}-peer-tls`]);
    expect(sites.a.controlServerName).toBe(CONTROL_NAME);
  });

  it("admits site A's operator; refuses site B's peer identity on every RPC", async () => {
    expect(await operator('a').listPairs()).toEqual([]);
    const methods = Object.values(loadControlProto().blockmirror.control.v1.ControlService.service);
    const outcomes = await Promise.all(methods.map((def) => call(controlAddress('a'), peerTls('b'), CONTROL_NAME, def.path, def.requestSerialize as (v: unknown) => Buffer)));
    expect(new Set(outcomes.map((o) => `${o.code} ${o.details}`))).toEqual(
      new Set([`${GrpcStatus.PERMISSION_DENIED} the control API admits only the operator (spiffe://blockmirror/site-a/operator) and local callers on the control socket; the caller is spiffe://blockmirror/site-b/peer`]),
    );
    const b = await call(controlAddress('a'), sites.b.operatorTls, CONTROL_NAME, methods[0]!.path, methods[0]!.requestSerialize as (v: unknown) => Buffer);
    expect(b.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(await operator('a').listPairs()).toEqual([]);
  });

  it("refuses site A's own certificates from another CA on both ports", async () => {
    const def = loadControlProto().blockmirror.control.v1.ControlService.service.ListPairs;
    expect((await call(controlAddress('a'), { ...sites.rogue.operatorTls, ca: sites.a.operatorTls.ca }, CONTROL_NAME, def.path, def.requestSerialize as (v: unknown) => Buffer)).code).toBe(GrpcStatus.UNAVAILABLE);
    const before = metricSum(await scrapeMetrics(sc.a!.addresses.metrics), 'blockmirror_peer_refused_total', { reason: 'tls' });
    const hs = await call(sc.a!.addresses.peer, { ...peerTls('rogue'), ca: peerTls('a').ca }, `${RELEASE}-sidecar-peer.${OPERATOR_NAMESPACE}.svc`, '/blockmirror.replication.v1.ReplicationService/Handshake', () => Buffer.alloc(0));
    expect(hs.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(metricSum(await scrapeMetrics(sc.a!.addresses.metrics), 'blockmirror_peer_refused_total', { reason: 'tls' })).toBeGreaterThan(before);
  });

  it("replicates A to B over the chart's peer identities; B's secondary, pinned to site A by tls.remoteSite, refuses site C", async () => {
    await Promise.all([randomFile(join(dir, 'a.img'), 4 * MiB), randomFile(join(dir, 'c.img'), 4 * MiB), sparseFile(join(dir, 'b.img'), 4 * MiB)]);
    const secondary = { name: 'db', volumePath: join(dir, 'b.img'), role: 'ROLE_SECONDARY' as const };
    await operator('b').createPair(secondary);
    const primary = (img: string) => ({ name: 'db', volumePath: join(dir, img), role: 'ROLE_PRIMARY' as const, peerAddress: sc.b!.addresses.peer, nbdListen: '127.0.0.1:0' });
    const until = async (k: 'a' | 'c', what: string, ok: (p: PairJson) => boolean): Promise<PairJson> => {
      const c = operator(k);
      let last: PairJson | undefined;
      return waitFor(what, async () => ((last = pairToJson(await c.getPair('db'))), ok(last) ? last : undefined), { timeoutMs: 60_000, intervalMs: 200 }).catch((err: Error) => {
        throw new Error(`${err.message}; last: ${JSON.stringify(last && { state: last.state, lastError: last.lastError })}`);
      });
    };
    await operator('c').createPair(primary('c.img'));
    const refused = await until('c', "site C's primary refused", (p) => p.state === 'Retrying' && p.retries >= 3);
    expect(refused.lastError).toContain('pair "db" accepts only spiffe://blockmirror/site-a/peer; the caller is spiffe://blockmirror/site-c/peer');
    expect(refused.bytesOnWire).toBe(0);
    await operator('c').deletePair('db');
    await operator('a').createPair(primary('a.img'));
    await until('a', "InSync with site A's primary", (p) => p.state === 'InSync' && p.outOfSyncBytes === 0);
    expect(await sha256File(join(dir, 'b.img'))).toBe(await sha256File(join(dir, 'a.img')));
  }, 120_000);
});
