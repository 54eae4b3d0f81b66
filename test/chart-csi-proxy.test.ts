import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImages, type BuiltImages } from './helpers/build-images.js';
import { claimPod } from './helpers/claim-pod.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { ClusterSite, testImages, type LocalImage } from './helpers/cluster-site.js';
import { SiteChart, type ChartPod } from './helpers/site-chart.js';
import { SiteCsi } from './helpers/site-csi.js';
import { waitFor } from './helpers/wait-for.js';

// The chart's CSI node proxy on a real node (hack/site.sh), in front of the lab CSI driver
// (hack/site-csi.sh), which registers itself through the kubelet's plugin registration
// socket as a real driver's node-driver-registrar does. `helm install` with
// csiProxy.drivers naming it adds a csi-proxy container to the sidecar's pod: it registers
// the same driver name with a higher CSI version, so the kubelet's calls go to the proxy,
// which forwards them to the driver. A plain claim's pod runs and writes; a claim whose
// StorageClass opts in to replication cannot be staged on this host node (no
// device-mapper), and the pod's events carry the proxy's reason. The sidecar runs under
// supervise and the proxy reaches it over the control socket.

const DRIVER = 'lab.csi.blockmirror.io';
const PROXY_CONTAINER = 'csi-proxy-lab-csi-blockmirror-io';
const NO_DM = 'no device-mapper: the kernel has none (/sys/class/misc/device-mapper missing; load dm_mod on the node)';

const cleanup = new CleanupStack();
let images: BuiltImages;
let busybox: LocalImage;
let site: ClusterSite;
let csi: SiteCsi;
let chart: SiteChart;
let proxyEndpoint: string;

interface LogRecord {
  message: string;
  [field: string]: unknown;
}

/** The csi-proxy container's JSON log lines. */
async function proxyLog(): Promise<LogRecord[]> {
  const pod = await sidecarPod();
  const out = await chart.kubectlOk(['logs', pod.name, '-c', PROXY_CONTAINER]);
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogRecord);
}

async function sidecarPod(): Promise<ChartPod> {
  const pods = await chart.pods('sidecar');
  if (pods.length !== 1) throw new Error(`${pods.length} sidecar pods`);
  return pods[0]!;
}

function claim(name: string, storageClass: string): object {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: 'default' },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: storageClass, resources: { requests: { storage: '32Mi' } } },
  };
}

function writer(name: string, claimName: string): object {
  return claimPod({ name, claimName, image: busybox.image, script: `echo hello-from-${name} >/data/hello && sync && echo written && exec sleep 3600` });
}

async function boundVolume(name: string): Promise<string> {
  return waitFor(`claim ${name} Bound`, async () => {
    const c = JSON.parse(await site.kubectlOk(['get', 'pvc', name, '-o', 'json'])) as { status: { phase?: string }; spec: { volumeName?: string } };
    return c.status.phase === 'Bound' ? c.spec.volumeName : undefined;
  }, { timeoutMs: 60_000, intervalMs: 250 });
}

beforeAll(async () => {
  images = (await buildImages()).images;
  busybox = (await testImages()).busybox;
  const work = await mkdtemp(join(tmpdir(), 'bm-chart-csi-proxy-'));
  cleanup.track('work dir', () => rm(work, { recursive: true, force: true }));
  const dir = join(work, 'site');
  cleanup.track('site', () => ClusterSite.down(dir));
  const started = Date.now();
  site = await ClusterSite.start('proxy', dir, { sandbox: images.pause, images: [images.operator, images.sidecar, busybox] });
  const siteUp = Date.now();
  // The driver first, registered by itself, as on a cluster where blockmirror comes later.
  cleanup.track('lab CSI driver', () => SiteCsi.down(dir));
  csi = await SiteCsi.up(site);
  const csiUp = Date.now();
  const kubeletDir = site.node.kubeletRootDir;
  chart = await SiteChart.install(site, {
    caDir: join(work, 'peer-ca'),
    images,
    helmArgs: ['--set', `csiProxy.drivers[0].name=${DRIVER}`, '--set', `csiProxy.drivers[0].endpoint=${csi.info.socket}`],
  });
  cleanup.track('chart', async () => void (await chart.uninstall()));
  proxyEndpoint = join(kubeletDir, 'plugins', 'blockmirror.io', DRIVER, 'csi.sock');
  const s = (ms: number): string => (ms / 1000).toFixed(1);
  process.stdout.write(`site up in ${s(siteUp - started)} s, lab driver in ${s(csiUp - siteUp)} s, chart with the CSI proxy Ready ${s(Date.now() - csiUp)} s later\n${chart.log}`);
}, 600_000);

afterAll(() => cleanup.releaseAll(), 300_000);

describe('the CSI node proxy deployed by the chart, in front of a registered driver', () => {
  it("the sidecar's pod: the sidecar under supervise (its process tree) and a csi-proxy container, both running", async () => {
    const pod = await sidecarPod();
    expect(pod.containers).toEqual(['sidecar', PROXY_CONTAINER]);
    expect(pod).toMatchObject({ ready: true, restartCount: 0 });
    // The container's process is the supervisor; the sidecar is its child.
    const pid = await chart.containerPid(pod.containerID);
    const cmdline = async (p: number): Promise<string[]> => (await readFile(`/proc/${p}/cmdline`, 'utf8')).split('\0').filter((x) => x !== '');
    const top = await cmdline(pid);
    expect(top.slice(0, 3)).toEqual(['node', '/app/dist/sidecar/cli/main.js', 'supervise']);
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter((x) => x !== '').map(Number);
    const kids = await Promise.all(children.map(cmdline));
    const sidecar = kids.find((k) => k[2] === 'sidecar');
    expect(sidecar).toBeDefined();
    expect(sidecar!.slice(0, 2)).toEqual(['node', '/app/dist/sidecar/cli/main.js']);
    expect(sidecar).toContain(`--control-socket=${site.info.dir}/blockmirror-state/control/control.sock`);
    // supervise saw it ready (its ready line went through the supervisor).
    const log = await chart.kubectlOk(['logs', pod.name, '-c', 'sidecar']);
    expect(log).toContain('sidecar ready under the supervisor');
  });

  it("the kubelet registers the proxy in the driver's place: its endpoint, NodeGetInfo through the proxy, the CSINode still lists the driver", async () => {
    // The kubelet's side: the driver registered first, then the proxy, whose version is higher.
    const kubeletLog = await readFile(join(site.info.dir, 'kubelet.log'), 'utf8');
    const registered = [...kubeletLog.matchAll(/Register new plugin with name: (\S+) at endpoint: (\S+)/g)].map((m) => `${m[1]} ${m[2]}`);
    expect(registered).toEqual([`${DRIVER} ${csi.info.socket}`, `${DRIVER} ${proxyEndpoint}`]);
    // The proxy's side: the kubelet said yes, and asked NodeGetInfo through it.
    const log = await waitFor('the proxy registered and asked NodeGetInfo', async () => {
      const l = await proxyLog();
      return l.some((r) => r.message === 'registered with the kubelet') && l.some((r) => r.message === 'CSI call' && r.method === 'NodeGetInfo') ? l : undefined;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    expect(log).toContainEqual(expect.objectContaining({ message: 'registered with the kubelet', driverName: DRIVER, endpoint: proxyEndpoint }));
    expect(log.filter((r) => r.message === 'the kubelet refused the registration')).toEqual([]);
    expect(log).toContainEqual(expect.objectContaining({ message: 'CSI node proxy ready', endpoint: `unix://${proxyEndpoint}`, driver: `unix://${csi.info.socket}`, splicer: true }));
    const csinode = JSON.parse(await site.kubectlOk(['get', 'csinode', site.node.name, '-o', 'json'])) as { spec: { drivers: { name: string; nodeID: string }[] } };
    expect(csinode.spec.drivers).toEqual([expect.objectContaining({ name: DRIVER, nodeID: site.node.name })]);
  });

  it('a pod on a plain lab-csi claim runs and writes; the kubelet staged and published it through the proxy', async () => {
    await site.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(claim('plain', 'lab-csi')) });
    const pv = await boundVolume('plain');
    const handle = (await site.kubectlOk(['get', 'pv', pv, '-o', 'jsonpath={.spec.csi.volumeHandle}'])).trim();
    await site.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(writer('plain-writer', 'plain')) });
    await waitFor('the pod to write', async () => (await site.kubectl(['logs', 'plain-writer'])).stdout.includes('written'), { timeoutMs: 120_000, intervalMs: 500 });
    expect((await site.kubectlOk(['exec', 'plain-writer', '--', 'cat', '/data/hello'])).trim()).toBe('hello-from-plain-writer');
    // Through the proxy: its record of the kubelet's calls for this volume...
    const calls = (await proxyLog()).filter((r) => r.message === 'CSI call' && r.volumeId === handle).map((r) => r.method);
    expect(calls).toEqual(expect.arrayContaining(['NodeStageVolume', 'NodePublishVolume']));
    // ...and the driver did the work, at the kubelet's own paths (forwarded unchanged).
    expect(await csi.logged('lab volume staged', { id: handle })).toHaveLength(1);
    expect(await csi.logged('lab volume published', { id: handle })).toHaveLength(1);
  }, 180_000);

  it("a pod on a claim whose StorageClass opts in does not start on this node (no device-mapper): its events carry the proxy's reason, and the driver staged nothing", async () => {
    const sc = {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: 'lab-csi-replicated' },
      provisioner: DRIVER,
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'Immediate',
      parameters: { 'csi.storage.k8s.io/fstype': 'ext4', 'blockmirror.io/replicate': 'true' },
    };
    await site.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [sc, claim('replicated', 'lab-csi-replicated')] }) });
    const pv = await boundVolume('replicated');
    const handle = (await site.kubectlOk(['get', 'pv', pv, '-o', 'jsonpath={.spec.csi.volumeHandle}'])).trim();
    expect((await site.kubectlOk(['get', 'pv', pv, '-o', 'jsonpath={.spec.csi.volumeAttributes}'])).trim()).toContain('"blockmirror.io/replicate":"true"');
    await site.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(writer('replicated-writer', 'replicated')) });
    const event = await waitFor('a FailedMount event with the proxy\'s reason', async () => {
      const out = await site.kubectlOk(['get', 'events', '--field-selector', 'involvedObject.name=replicated-writer', '-o', 'jsonpath={range .items[*]}{.reason}{"\\t"}{.message}{"\\n"}{end}']);
      return out.split('\n').find((l) => l.startsWith('FailedMount\t') && l.includes('node cannot splice'));
    }, { timeoutMs: 120_000, intervalMs: 1000 });
    expect(event).toContain(`node cannot splice: ${NO_DM}`);
    expect(event).toContain('FailedPrecondition');
    const phase = (await site.kubectlOk(['get', 'pod', 'replicated-writer', '-o', 'jsonpath={.status.phase}'])).trim();
    expect(phase).toBe('Pending');
    // The proxy refused before asking the driver for anything: no staging to undo.
    expect((await proxyLog()).filter((r) => r.message === 'CSI call' && r.volumeId === handle).map((r) => r.method)).toContain('NodeStageVolume');
    expect(await csi.logged('lab volume staged', { id: handle })).toEqual([]);
    await site.kubectlOk(['delete', 'pod', 'replicated-writer', '--wait=true', '--timeout=60s']);
  }, 180_000);

  it('the plain pod and claim are deleted cleanly through the proxy (unpublish, unstage)', async () => {
    const handle = (await site.kubectlOk(['get', 'pv', await boundVolume('plain'), '-o', 'jsonpath={.spec.csi.volumeHandle}'])).trim();
    await site.kubectlOk(['delete', 'pod', 'plain-writer', '--wait=true', '--timeout=90s']);
    const calls = await waitFor('NodeUnstageVolume through the proxy', async () => {
      const c = (await proxyLog()).filter((r) => r.message === 'CSI call' && r.volumeId === handle).map((r) => r.method);
      return c.includes('NodeUnstageVolume') ? c : undefined;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    expect(calls).toContain('NodeUnpublishVolume');
    await site.kubectlOk(['delete', 'pvc', 'plain', 'replicated', '--wait=true', '--timeout=60s']);
  }, 180_000);
});
