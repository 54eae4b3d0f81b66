import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImages } from './helpers/build-images.js';
import type { BuiltImages } from './helpers/build-images.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { ClusterSite } from './helpers/cluster-site.js';
import { renderExample, type PairObject } from './helpers/kube-site.js';
import { randomFile, sha256File, sparseFile } from './helpers/replication-harness.js';
import { runOk } from './helpers/run-cli.js';
import { SiteChart, type ChartPod } from './helpers/site-chart.js';
import { waitFor } from './helpers/wait-for.js';

// The chart as a user installs it, on real nodes: two sites (hack/site.sh: control plane,
// kubelet, containerd, each in its own network namespace), `helm install` on both
// (hack/site-chart.sh) with the operator and sidecar images built here from the
// Dockerfile and imported by name (imagePullPolicy Never). The operator runs in-cluster
// with its ServiceAccount; the sidecar DaemonSet's pod registers its node; a pair on
// `local` PVs (loop devices on the nodes) replicates from site A to site B; then
// `helm upgrade` rolls every pod, a `kill -9` of the sidecar's process is healed by the
// kubelet, and `helm uninstall` keeps the CRD and the pairs. These nodes run on the host's
// kernel, which has no device-mapper: their sidecars say so, and a primary whose volume
// opts in to the splice is refused with a clear condition (the splice itself is proved in
// the VM, test/vm-splice.test.ts).

const MiB = 1024 * 1024;
const VOLUME = 32 * MiB;
const PAIR = 'db-data';
const SIDECAR_PAIR = `default.${PAIR}`;

interface Site {
  site: ClusterSite;
  chart: SiteChart;
  /** The loop device the site's `local` PV names, and its backing file. */
  device: string;
  file: string;
}

interface LeaseJson {
  metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
}

const cleanup = new CleanupStack();
let images: BuiltImages;
let work: string;
/** Made in beforeAll: losetup a file as a loop device, detached after the sites. */
let loopDevice: (name: string, fill: (path: string, bytes: number) => Promise<void>) => Promise<{ file: string; device: string }>;
let a: Site;
let b: Site;

async function lease(s: Site, name: string): Promise<LeaseJson> {
  return JSON.parse(await s.chart.kubectlOk(['get', 'lease', name, '-o', 'json'])) as LeaseJson;
}

async function pair(s: Site): Promise<PairObject['status']> {
  return (JSON.parse(await s.site.kubectlOk(['get', 'rp', PAIR, '-o', 'json'])) as PairObject).status;
}

async function onePod(s: Site, component: 'operator' | 'sidecar'): Promise<ChartPod> {
  const pods = await s.chart.pods(component);
  if (pods.length !== 1) throw new Error(`${s.site.name}: ${pods.length} ${component} pods`);
  return pods[0]!;
}

/** The sidecar's own metrics (hostNetwork: on its node's address), one sample per name. */
async function sidecarMetrics(s: Site): Promise<Map<string, number>> {
  const res = await fetch(`http://${s.site.node.address}:9400/metrics`, { signal: AbortSignal.timeout(5_000) });
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^(blockmirror_\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (m !== null && m[2]!.includes(`pair="${SIDECAR_PAIR}"`)) samples.set(`${m[1]}{${m[2]}}`, Number(m[3]));
  }
  return samples;
}

/** The pair InSync as its sidecar's running process reports it, and as kubectl shows it. */
async function waitInSync(s: Site, what: string, timeoutMs = 90_000): Promise<void> {
  await waitFor(`${what}: ${s.site.name}'s sidecar reports InSync`, async () => (await sidecarMetrics(s)).get(`blockmirror_pair_state{pair="${SIDECAR_PAIR}",state="InSync"}`) === 1, { timeoutMs, intervalMs: 500 });
  await waitFor(`${what}: kubectl get rp shows InSync on ${s.site.name}`, async () => (await pair(s))?.state === 'InSync', { timeoutMs, intervalMs: 500 });
}

/** JSON log records of a pod's current container. */
async function podLog(s: Site, pod: string): Promise<Record<string, unknown>[]> {
  const out = await s.chart.kubectlOk(['logs', pod]);
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function writeThroughExport(s: Site, args: string[]): Promise<void> {
  // The export listens on the node's loopback, in the site's network namespace.
  const address = (await pair(s))?.exportAddress;
  expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
  const r = await s.site.inNetns(args[0]!, [...args.slice(1), `nbd://${address}/${SIDECAR_PAIR}`], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`${args[0]} on ${s.site.name} exited ${r.code}: ${r.stderr}`);
}

beforeAll(async () => {
  images = (await buildImages()).images;
  work = await mkdtemp(join(tmpdir(), 'bm-chart-nodes-'));
  cleanup.track('work dir', () => rm(work, { recursive: true, force: true }));
  // The nodes' volumes: loop devices the sidecars open through the host's /dev. Released
  // after the sites (the cleanup stack runs newest first).
  const loop = (loopDevice = async (name: string, fill: (path: string, bytes: number) => Promise<void>): Promise<{ file: string; device: string }> => {
    const file = join(work, `${name}.img`);
    await fill(file, VOLUME);
    const device = (await runOk('losetup', ['--find', '--show', file])).trim();
    cleanup.track(`loop device ${device}`, async () => void (await runOk('losetup', ['-d', device])));
    return { file, device };
  });
  // Site A's data exists before the pair does: the initial copy carries it.
  const [volA, volB] = await Promise.all([loop('site-a', randomFile), loop('site-b', sparseFile)]);

  const started = Date.now();
  const start = async (name: string): Promise<ClusterSite> => {
    cleanup.track(`site ${name}`, () => ClusterSite.down(join(work, name)));
    return ClusterSite.start(name, join(work, name), { sandbox: images.pause, images: [images.operator, images.sidecar] });
  };
  const [siteA, siteB] = await Promise.all([start('site-a'), start('site-b')]);
  const sitesUp = Date.now();
  const caDir = join(work, 'peer-ca');
  const [chartA, chartB] = await Promise.all([SiteChart.install(siteA, { caDir, images }), SiteChart.install(siteB, { caDir, images })]);
  const ready = Date.now();
  a = { site: siteA, chart: chartA, ...volA };
  b = { site: siteB, chart: chartB, ...volB };
  const s = (ms: number): string => (ms / 1000).toFixed(1);
  process.stdout.write(
    `two sites up in ${s(sitesUp - started)} s, chart installed and every pod Ready ${s(ready - sitesUp)} s later (${s(ready - started)} s in all):\n` +
      `${siteA.upLog}${siteB.upLog}${chartA.log}${chartB.log}`,
  );
}, 600_000);

afterAll(() => cleanup.releaseAll(), 300_000);

describe('the chart on real nodes', () => {
  it('helm install on both sites: every pod of the chart Ready, from the locally built images, never pulled', async () => {
    for (const s of [a, b]) {
      const pods = await s.chart.pods();
      expect(pods.map((p) => p.component).sort()).toEqual(['operator', 'sidecar']);
      for (const p of pods) {
        expect(p).toMatchObject({ ready: true, restartCount: 0, node: s.site.node.name, imagePullPolicy: 'Never' });
        expect(p.image).toBe(p.component === 'operator' ? images.operator.image : images.sidecar.image);
        // Ready is the readiness probe passing; liveness is checked only once started.
        expect(p.probes).toEqual(['startupProbe', 'livenessProbe', 'readinessProbe']);
      }
      const ds = JSON.parse(await s.chart.kubectlOk(['get', 'daemonset', `${s.chart.info.release}-sidecar`, '-o', 'json'])) as { status: Record<string, number> };
      expect(ds.status).toMatchObject({ desiredNumberScheduled: 1, numberReady: 1, updatedNumberScheduled: 1 });
      const deploy = JSON.parse(await s.chart.kubectlOk(['get', 'deployment', `${s.chart.info.release}-operator`, '-o', 'json'])) as { status: Record<string, number> };
      expect(deploy.status).toMatchObject({ replicas: 1, readyReplicas: 1, availableReplicas: 1 });
      // Nothing was pulled: the kubelet found every image on the node.
      const reasons = (await s.chart.kubectlOk(['get', 'events', '-o', 'jsonpath={range .items[*]}{.reason}{"\\n"}{end}'])).split('\n');
      expect(reasons).toContain('Pulled');
      expect(reasons.filter((r) => r === 'Pulling' || r === 'Failed' || r === 'ErrImageNeverPull')).toEqual([]);
    }
  });

  it('the operator runs in-cluster: its ServiceAccount, the leader Lease, its probes passing', async () => {
    for (const s of [a, b]) {
      const op = await onePod(s, 'operator');
      // In-cluster credentials only: no kubeconfig flag or variable.
      expect(op.serviceAccountName).toBe(`${s.chart.info.release}-operator`);
      expect(op.args.filter((x) => x.startsWith('--kubeconfig'))).toEqual([]);
      expect(op.env).not.toContain('KUBECONFIG');
      // Who the pod's mounted token is: the ServiceAccount, bound to this very pod.
      const review = `const fs = require('fs'), d = '/var/run/secrets/kubernetes.io/serviceaccount/';
        const req = require('https').request({ host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT,
          path: '/apis/authentication.k8s.io/v1/selfsubjectreviews', method: 'POST', ca: fs.readFileSync(d + 'ca.crt'),
          headers: { authorization: 'Bearer ' + fs.readFileSync(d + 'token', 'utf8').trim(), 'content-type': 'application/json' } },
          (res) => { let t = ''; res.on('data', (c) => (t += c)).on('end', () => console.log(t)); });
        req.end(JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }));`;
      const who = JSON.parse(await s.chart.kubectlOk(['exec', op.name, '--', 'node', '-e', review])) as { status: { userInfo: { username: string; extra?: Record<string, string[]> } } };
      expect(who.status.userInfo.username).toBe(`system:serviceaccount:${s.chart.info.namespace}:${s.chart.info.release}-operator`);
      expect(who.status.userInfo.extra?.['authentication.kubernetes.io/pod-name']).toEqual([op.name]);
      // It leads: the Lease names it (identity: its hostname, the pod's name, and its pid).
      const leader = await waitFor('the operator to hold the leader Lease', async () => {
        const l = await lease(s, 'blockmirror-operator');
        return l.spec.holderIdentity?.startsWith(`${op.name}-`) ? l : undefined;
      }, { timeoutMs: 30_000, intervalMs: 500 });
      expect(leader.spec.leaseDurationSeconds).toBeGreaterThan(0);
      // Probes: Ready means the readiness probe passes; the liveness probe never failed
      // enough to restart it (checked again after everything else, below).
      expect(op).toMatchObject({ ready: true, restartCount: 0 });
      const probes = JSON.parse(await s.chart.kubectlOk(['get', 'pod', op.name, '-o', 'jsonpath={.spec.containers[0]}'])) as Record<string, { httpGet?: { path: string } }>;
      expect(probes.livenessProbe?.httpGet?.path).toBe('/healthz');
      expect(probes.readinessProbe?.httpGet?.path).toBe('/readyz');
    }
  });

  it("the sidecar DaemonSet's pod registers its node: a Lease kept fresh, with its control and peer endpoints", async () => {
    const registered = async (s: Site): Promise<void> => {
      const node = s.site.node;
      const name = `blockmirror-sidecar-${node.name}`;
      const first = await lease(s, name);
      expect(first.spec.holderIdentity).toBe(node.name);
      expect(first.metadata.labels).toMatchObject({ 'app.kubernetes.io/component': 'sidecar', 'blockmirror.io/node': node.name });
      expect(first.metadata.annotations).toMatchObject({ 'blockmirror.io/control-endpoint': `${node.address}:7400`, 'blockmirror.io/peer-endpoint': `${node.address}:7401` });
      expect(s.chart.info.peerEndpoints).toEqual([`${node.address}:7401`]);
      // Renewed while the pod runs.
      await waitFor(`${name} renewed`, async () => (await lease(s, name)).spec.renewTime !== first.spec.renewTime, { timeoutMs: 30_000, intervalMs: 500 });
    };
    await Promise.all([registered(a), registered(b)]);
  });

  it('a pair on local PVs (loop devices on the nodes): primary on A, secondary on B, InSync; data written on A reaches B', async () => {
    const common = { VOLUME_SIZE: `${VOLUME / MiB}Mi` };
    await b.site.kubectlOk(['apply', '-f', '-'], { input: await renderExample('examples/two-site/site-b.yaml', { ...common, VOLUME_PATH: b.device, NODE: b.site.node.name }) });
    await a.site.kubectlOk(['apply', '-f', '-'], {
      input: await renderExample('examples/two-site/site-a.yaml', { ...common, VOLUME_PATH: a.device, NODE: a.site.node.name, REMOTE_ENDPOINT: b.chart.info.peerEndpoints[0]! }),
    });
    await waitInSync(a, 'initial copy');
    await waitFor("site B's secondary InSync on its node", async () => {
      const st = await pair(b);
      return st?.state === 'InSync' && st.sidecar?.node === b.site.node.name;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    expect((await pair(a))?.sidecar).toEqual({ node: a.site.node.name, endpoint: `${a.site.node.address}:7400` });
    expect(await sha256File(b.device)).toBe(await sha256File(a.device));

    // New data through the primary's export, with a real NBD client on node A.
    const data = join(work, 'new-data.img');
    await randomFile(data, VOLUME);
    await writeThroughExport(a, ['nbdcopy', data]);
    await waitInSync(a, 'after the write');
    expect(await sha256File(a.device)).toBe(await sha256File(data));
    expect(await sha256File(b.device)).toBe(await sha256File(data));
  }, 240_000);

  it('a host node has no device-mapper: its sidecar registers why; a primary on a volume that opts in is refused (NodeCannotSplice), nothing replicates it, the pair that does not opt in stays InSync', async () => {
    // The host kernel (a /dev/mapper/control node may exist here all the same).
    const NO_DM = 'no device-mapper: the kernel has none (/sys/class/misc/device-mapper missing; load dm_mod on the node)';
    const node = a.site.node;
    // The sidecar says so: in its registration, once in its log, and as a metric.
    const registration = await lease(a, `blockmirror-sidecar-${node.name}`);
    expect(registration.metadata.labels?.['blockmirror.io/splice-capable']).toBe('false');
    expect(registration.metadata.annotations?.['blockmirror.io/splice-missing']).toContain(NO_DM);
    const said = (await podLog(a, (await onePod(a, 'sidecar')).name)).filter((r) => r.message === 'node cannot splice');
    expect(said).toEqual([expect.objectContaining({ level: 'warn', reason: expect.stringContaining(NO_DM) })]);
    const scrape = async (): Promise<string> => (await fetch(`http://${node.address}:9400/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
    expect(await scrape()).toMatch(/^blockmirror_node_splice_capable 0$/m);

    // A volume that opts in through its StorageClass's parameter (the key the CSI proxy
    // reads from volume_context), on node A, and a primary pair on it.
    const vol = await loopDevice('site-a-spliced', sparseFile);
    const objects = [
      { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'blockmirror-spliced' }, provisioner: 'kubernetes.io/no-provisioner', parameters: { 'blockmirror.io/replicate': 'true' } },
      {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: 'spliced-site-a' },
        spec: {
          capacity: { storage: `${VOLUME / MiB}Mi` },
          accessModes: ['ReadWriteOnce'],
          storageClassName: 'blockmirror-spliced',
          volumeMode: 'Block',
          local: { path: vol.device },
          nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [node.name] }] }] } },
          claimRef: { namespace: 'default', name: 'spliced' },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'spliced', namespace: 'default' },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'blockmirror-spliced', volumeMode: 'Block', volumeName: 'spliced-site-a', resources: { requests: { storage: `${VOLUME / MiB}Mi` } } },
      },
      {
        apiVersion: 'blockmirror.io/v1alpha1',
        kind: 'ReplicationPair',
        metadata: { name: 'spliced', namespace: 'default' },
        spec: { pvcName: 'spliced', role: 'primary', mode: 'sync', remote: { endpoint: b.chart.info.peerEndpoints[0]! } },
      },
    ];
    await a.site.kubectlOk(['apply', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n---\n') });

    const refused = await waitFor('the opted-in pair refused with NodeCannotSplice', async () => {
      const rp = JSON.parse(await a.site.kubectlOk(['get', 'rp', 'spliced', '-o', 'json'])) as PairObject;
      const ready = rp.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.reason === 'NodeCannotSplice' ? { rp, ready } : undefined;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    expect(refused.ready.status).toBe('False');
    expect(refused.ready.message).toContain(`node ${node.name} cannot splice: ${NO_DM}`);
    expect(refused.ready.message).toContain("StorageClass blockmirror-spliced's parameter blockmirror.io/replicate");
    expect(refused.rp.status?.conditions?.find((c) => c.type === 'Synchronized')).toMatchObject({ status: 'False', reason: 'NodeCannotSplice' });
    // What a user sees.
    // ROLE is the role a sidecar holds: none, as no sidecar took the pair; -o wide shows
    // the role asked for.
    const row = (await a.site.kubectlOk(['get', 'rp', 'spliced', '--no-headers'])).trim();
    expect(row).toMatch(/^spliced\s+sync\s+Error\s/);
    const wide = (await a.site.kubectlOk(['get', 'rp', 'spliced', '-o', 'custom-columns=ROLE:.status.role,SPEC:.spec.role', '--no-headers'])).trim();
    expect(wide.split(/\s+/)).toEqual(['<none>', 'primary']);
    const described = await a.site.kubectlOk(['describe', 'rp', 'spliced']);
    expect(described).toMatch(/Reason:\s+NodeCannotSplice/);
    expect(described).toMatch(/Warning\s+NodeCannotSplice\s+.*no device-mapper: the kernel has none/);

    // Never on the sidecar: no series of that pair, while the pair that does not opt in
    // goes on InSync on the same node.
    const text = await scrape();
    expect(text).not.toContain('pair="default.spliced"');
    expect(text).toContain(`blockmirror_pair_state{pair="${SIDECAR_PAIR}",state="InSync"} 1`);
    const plain = await pair(a);
    expect(plain?.state).toBe('InSync');
    expect(plain?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');

    // Deleting the refused pair goes through the finalizer like any other.
    await a.site.kubectlOk(['delete', 'rp', 'spliced', '--wait=true', '--timeout=60s']);
    await a.site.kubectlOk(['delete', 'pvc', 'spliced', '--wait=true', '--timeout=60s']);
    await a.site.kubectlOk(['delete', 'pv', 'spliced-site-a', '--wait=true', '--timeout=60s']);
    await a.site.kubectlOk(['delete', 'storageclass', 'blockmirror-spliced']);
  }, 180_000);

  it('helm upgrade rolls the operator and the sidecar on both sites; the pair comes back from its state, nothing resynced in full, no data lost', async () => {
    const before = { a: await sha256File(a.device), b: await sha256File(b.device) };
    expect(before.b).toBe(before.a);
    const old = new Map<string, ChartPod>();
    for (const s of [a, b]) for (const p of await s.chart.pods()) old.set(`${s.site.name}/${p.component}`, p);

    // A changed value in each pod template: both workloads roll.
    const upgrade = async (s: Site): Promise<SiteChart> =>
      SiteChart.install(s.site, { caDir: join(work, 'peer-ca'), images, helmArgs: ['--set', 'sidecar.logLevel=debug', '--set', 'operator.logLevel=debug'] });
    const started = Date.now();
    [a.chart, b.chart] = await Promise.all([upgrade(a), upgrade(b)]);
    process.stdout.write(`helm upgrade of both sites rolled out in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);

    for (const s of [a, b]) {
      expect((await s.chart.helm(['history', s.chart.info.release, '-n', s.chart.info.namespace])).stdout).toMatch(/^2\s.*deployed/m);
      for (const component of ['operator', 'sidecar'] as const) {
        const now = await onePod(s, component);
        expect(now.uid).not.toBe(old.get(`${s.site.name}/${component}`)!.uid);
        expect(now).toMatchObject({ ready: true, restartCount: 0 });
        expect(now.args).toContain('--log-level=debug');
      }
      const op = await onePod(s, 'operator');
      await waitFor(`the new operator of ${s.site.name} to lead`, async () => (await lease(s, 'blockmirror-operator')).spec.holderIdentity?.startsWith(`${op.name}-`), { timeoutMs: 60_000, intervalMs: 500 });
    }
    await waitInSync(a, 'after the upgrade');

    // Restored from the node's state dir: the same pair, its dirty log clean, so the
    // new session resumed with an empty resync — never a full copy.
    const log = await podLog(a, (await onePod(a, 'sidecar')).name);
    expect(log).toContainEqual(expect.objectContaining({ message: 'pair started', pair: SIDECAR_PAIR, volume: a.device }));
    expect(log).toContainEqual(expect.objectContaining({ message: 'peer session started', pair: SIDECAR_PAIR, fullSyncRequired: false }));
    expect(log).toContainEqual(expect.objectContaining({ message: 'resync started', pair: SIDECAR_PAIR, outOfSyncBytes: 0 }));
    expect(log.filter((r) => r.message === 'full sync started')).toEqual([]);
    const secondaryLog = await podLog(b, (await onePod(b, 'sidecar')).name);
    expect(secondaryLog).toContainEqual(expect.objectContaining({ message: 'primary connected', pair: SIDECAR_PAIR, fullSyncRequired: false }));
    // What the new primary process sent its peer: far less than the volume.
    const wire = (await sidecarMetrics(a)).get(`blockmirror_peer_wire_bytes_total{pair="${SIDECAR_PAIR}"}`);
    expect(wire).toBeDefined();
    expect(wire!).toBeLessThan(VOLUME / 8);

    expect(await sha256File(a.device)).toBe(before.a);
    expect(await sha256File(b.device)).toBe(before.a);

    // And it still replicates: a write through the new sidecar's export reaches B.
    await writeThroughExport(a, ['qemu-io', '-f', 'raw', '-c', 'write -P 0x5a 4M 1M', '-c', 'flush']);
    await waitInSync(a, 'after a write through the new export');
    const after = await sha256File(a.device);
    expect(after).not.toBe(before.a);
    expect(await sha256File(b.device)).toBe(after);
  }, 300_000);

  it("kill -9 of the sidecar container's process: the kubelet restarts it, it registers again, its pair returns to InSync", async () => {
    const before = await onePod(a, 'sidecar');
    const pid = await a.chart.containerPid(before.containerID);
    expect(await readFile(`/proc/${pid}/cmdline`, 'utf8')).toContain('sidecar');
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const after = await waitFor('the kubelet to restart the sidecar container', async () => {
      const p = await onePod(a, 'sidecar');
      return p.restartCount > before.restartCount && p.ready ? p : undefined;
    }, { timeoutMs: 90_000, intervalMs: 500 });
    expect(after.uid).toBe(before.uid);
    expect(after.containerID).not.toBe(before.containerID);
    expect(after.lastTerminated).toMatchObject({ exitCode: 137 });
    // Its registration renewed by the new container.
    await waitFor('the sidecar Lease renewed after the kill', async () => {
      const l = await lease(a, `blockmirror-sidecar-${a.site.node.name}`);
      return new Date(l.spec.renewTime ?? 0).getTime() > killedAt;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    await waitInSync(a, 'after the kill');
    expect(await sha256File(b.device)).toBe(await sha256File(a.device));
  }, 180_000);

  it('the operators were never restarted: their liveness probes passed throughout', async () => {
    for (const s of [a, b]) expect(await onePod(s, 'operator')).toMatchObject({ ready: true, restartCount: 0 });
  });

  it('helm uninstall removes the pods and keeps the CRD and the ReplicationPairs', async () => {
    await Promise.all([a.chart.uninstall(), b.chart.uninstall()]);
    for (const s of [a, b]) {
      await waitFor(`the chart's pods gone from ${s.site.name}`, async () => (await s.chart.kubectlOk(['get', 'pods', '-o', 'name'])).trim() === '', { timeoutMs: 120_000, intervalMs: 500 });
      expect(await s.site.kubectlOk(['get', 'crd', 'replicationpairs.blockmirror.io', '-o', 'name'])).toContain('replicationpairs.blockmirror.io');
      const rp = JSON.parse(await s.site.kubectlOk(['get', 'rp', PAIR, '-o', 'json'])) as PairObject;
      expect(rp.spec.role).toBe(s === a ? 'primary' : 'secondary');
      expect((await s.chart.helm(['list', '-n', s.chart.info.namespace, '-q'])).stdout.trim()).toBe('');
    }
  }, 180_000);
});
