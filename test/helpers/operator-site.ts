import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FaultProxy } from './fault-proxy.js';
import { KubeSite, OperatorProcess, OPERATOR_NAMESPACE, RELEASE, type PairObject } from './kube-site.js';
import type { Track } from './nbd-fuse-mount.js';
import { run } from './run-cli.js';
import { SidecarProcess } from './sidecar-process.js';
import { waitFor } from './wait-for.js';

// One site of the operator-level role tests: a real control plane with the chart
// installed, its own operator and sidecar processes authenticated with the chart's
// ServiceAccount tokens; and what those tests do to a ReplicationPair on it.

export interface OperatorSite {
  name: string;
  kube: KubeSite;
  operator: OperatorProcess;
  sidecar: SidecarProcess;
  sidecarArgs: string[];
  stateDir: string;
  node: string;
}

/** What the role tests read of a pair's status. */
export type RoleStatus = NonNullable<PairObject['status']> & {
  role?: string;
  appliedRole?: string;
  generation?: string;
  peerGeneration?: string;
  fenced?: boolean;
  lastError?: string;
  lastPromotionTime?: string;
  promotedPointTime?: string;
};

/** The sidecar's pair for a ReplicationPair in the default namespace. */
export function sidecarPair(pair: string): string {
  return `default.${pair}`;
}

/** Starts a sidecar with the site's flags (plus `ports`, to come back on the same ones). */
export async function startSiteSidecar(track: Track, site: Pick<OperatorSite, 'name' | 'stateDir' | 'sidecarArgs'>, ports: string[] = []): Promise<SidecarProcess> {
  const sc = await SidecarProcess.start({ stateDir: site.stateDir, args: [...site.sidecarArgs, ...ports] });
  track(`sidecar ${site.name} pid ${sc.child.pid}`, async () => {
    const exited = await Promise.race([sc.stop(), new Promise<null>((r) => setTimeout(() => r(null), 15_000).unref())]);
    if (exited === null) await sc.kill9();
  });
  return sc;
}

/** Restarts the site's (killed) sidecar from its state, on the same control and peer ports. */
export async function restartSiteSidecar(track: Track, site: OperatorSite): Promise<void> {
  site.sidecar = await startSiteSidecar(track, site, ['--control-listen', site.sidecar.addresses.control, '--peer-listen', site.sidecar.addresses.peer]);
}

export async function startOperatorSite(track: Track, work: string, name: string, node: string): Promise<OperatorSite> {
  const dir = join(work, name);
  await mkdir(dir, { recursive: true });
  const kube = await KubeSite.start(name, join(dir, 'control-plane'), { install: 'helm' });
  track(`control plane ${name}`, () => kube.stop());
  const sidecarArgs = ['--register-node', node, '--register-namespace', OPERATOR_NAMESPACE, '--kubeconfig', await kube.serviceAccountKubeconfig(`${RELEASE}-sidecar`, { node })];
  const stateDir = join(dir, 'sidecar-state');
  const sidecar = await startSiteSidecar(track, { name, stateDir, sidecarArgs });
  const operator = await OperatorProcess.start(kube, [], await kube.serviceAccountKubeconfig(`${RELEASE}-operator`));
  track(`operator of ${name}`, () => operator.stop());
  return { name, kube, operator, sidecar, sidecarArgs, stateDir, node };
}

/**
 * Sites A and B (nodes node-a and node-b), each direction of the peer link through a proxy
 * the test can cut: A dials B through `toB`; B, once promoted, dials A through `toA`.
 */
export async function startTwoSites(track: Track, work: string): Promise<{ a: OperatorSite; b: OperatorSite; toB: FaultProxy; toA: FaultProxy }> {
  const [a, b] = await Promise.all([startOperatorSite(track, work, 'site-a', 'node-a'), startOperatorSite(track, work, 'site-b', 'node-b')]);
  const proxy = async (target: string): Promise<FaultProxy> => {
    const p = await FaultProxy.start({ target });
    track(`proxy ${p.address}`, () => Promise.race([p.close(), new Promise<void>((r) => setTimeout(r, 2000).unref())]));
    return p;
  };
  return { a, b, toB: await proxy(b.sidecar.addresses.peer), toA: await proxy(a.sidecar.addresses.peer) };
}

export function readyOf(s: RoleStatus): { status: string; reason: string; message: string } | undefined {
  return s.conditions?.find((c) => c.type === 'Ready');
}

export async function roleStatus(site: OperatorSite, pair: string): Promise<RoleStatus> {
  return ((await site.kube.getPair(pair))?.status ?? {}) as RoleStatus;
}

export async function waitRoleStatus(site: OperatorSite, pair: string, what: string, ok: (s: RoleStatus) => boolean, timeoutMs = 60_000): Promise<RoleStatus> {
  let last: RoleStatus = {};
  try {
    return await waitFor(
      `${site.name}: ${what}`,
      async () => {
        last = await roleStatus(site, pair);
        return ok(last) ? last : undefined;
      },
      { timeoutMs, intervalMs: 200 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify({ state: last.state, role: last.role, generation: last.generation, peerGeneration: last.peerGeneration, ready: readyOf(last), lastError: last.lastError })}`, { cause: err });
  }
}

export async function patchPair(site: OperatorSite, pair: string, spec: Record<string, unknown>): Promise<void> {
  await site.kube.kubectlOk(['patch', 'rp', pair, '--type=merge', '-p', JSON.stringify({ spec })]);
}

/** The pair's events, one "TYPE REASON MESSAGE" line each. */
export async function pairEvents(site: OperatorSite, pair: string): Promise<string[]> {
  const out = await site.kube.kubectlOk(['get', 'events', '--field-selector', `involvedObject.name=${pair}`, '-o', 'jsonpath={range .items[*]}{.type} {.reason} {.message}{"\\n"}{end}']);
  return out.split('\n').filter((l) => l !== '');
}

/** One 4 KiB write through an export (qemu-io): accepted or not. */
export async function tryWrite(nbdAddress: string, exportName: string, offset: number): Promise<{ accepted: boolean; output: string }> {
  const r = await run('qemu-io', ['-f', 'raw', '-c', `write -P 0x5a ${offset} 4k`, `nbd://${nbdAddress}/${exportName}`], { timeoutMs: 30_000 });
  const output = r.stdout + r.stderr;
  return { accepted: r.code === 0 && /wrote 4096/.test(output) && !/failed/i.test(output), output };
}

/**
 * RTO as a user meets it: from `kubectl patch` of `site` to the first write its export
 * accepts (at `offset`, which the caller keeps out of its data).
 */
export async function promoteAndMeasure(site: OperatorSite, pair: string, spec: Record<string, unknown>, offset: number): Promise<number> {
  const t0 = performance.now();
  await patchPair(site, pair, spec);
  await waitFor(
    `${site.name}'s export accepting writes`,
    async () => {
      const st = await site.sidecar.rpcStatus(sidecarPair(pair));
      if (st.role !== 'primary' || st.fenced || st.nbdAddress === '') return undefined;
      return (await tryWrite(st.nbdAddress, sidecarPair(pair), offset)).accepted;
    },
    { timeoutMs: 60_000, intervalMs: 50 },
  );
  return performance.now() - t0;
}

/**
 * `primary` has shipped everything (settled: InSync in sync mode, Replicating in async;
 * nothing out of sync) and `secondary` holds its generation; both resources say so.
 * Answers the primary's sidecar status.
 */
export async function converged(primary: OperatorSite, secondary: OperatorSite, pair: string, what: string, mode: 'sync' | 'async' = 'sync'): Promise<{ bytesOnWire: number; generation: string }> {
  const name = sidecarPair(pair);
  const settled = mode === 'sync' ? 'InSync' : 'Replicating';
  const p = await primary.sidecar.waitForPair(name, `${what}: ${primary.name} ${settled}`, (s) => s.role === 'primary' && s.state === settled && s.outOfSyncBytes === 0, 60_000);
  await secondary.sidecar.waitForPair(name, `${what}: ${secondary.name} holds ${primary.name}'s generation`, (s) => s.role === 'secondary' && s.generation === p.generation && s.consistent && s.dirtyBlocks === 0, 60_000);
  await waitRoleStatus(primary, pair, `${what}: resource ${settled} as primary`, (s) => s.state === settled && s.role === 'primary' && readyOf(s)?.reason === 'PairActive');
  await waitRoleStatus(secondary, pair, `${what}: resource shows a secondary`, (s) => s.role === 'secondary' && s.generation === p.generation);
  return p;
}
