import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImages, type BuiltImages } from './helpers/build-images.js';
import { claimPod } from './helpers/claim-pod.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { ClusterSite, testImages, type LocalImage } from './helpers/cluster-site.js';
import { renderExample, type PairObject } from './helpers/kube-site.js';
import { sha256File } from './helpers/replication-harness.js';
import { runOk } from './helpers/run-cli.js';
import { SiteChart } from './helpers/site-chart.js';
import { SiteCsi } from './helpers/site-csi.js';
import { waitFor } from './helpers/wait-for.js';

// A secondary on a CSI volume, fenced, on real nodes (hack/site.sh: control plane, kubelet
// and containerd per site, each in its own network namespace; no VM). Site A: the chart
// and a primary on a `local` PV (a loop device holding an ext4 filesystem with a file in
// it; host nodes cannot splice, so the primary is not a CSI volume here). Site B: the lab
// CSI driver (hack/site-csi.sh) and the chart with csiProxy.drivers wrapping it; the user's
// objects are examples/csi-secondary/site-b.yaml: an opted-in StorageClass, a claim of it
// and the secondary pair. The operator fences the volume on B's node, a holder pod gets
// it staged, and the pair replicates into the raw device B's CSI proxy holds. A pod that
// mounts the claim for writing is refused with the fence's reason in its events; once the
// pair is deleted, the holder pod and the fence go, and a pod on B reads A's file.

const MiB = 1024 * 1024;
const VOLUME = 32 * MiB;
const PAIR = 'db-data';
const CLAIM = 'db-data';
const DRIVER = 'lab.csi.blockmirror.io';
const PROXY_CONTAINER = 'csi-proxy-lab-csi-blockmirror-io';
const HELLO = 'written on site A, before the pair existed';

const cleanup = new CleanupStack();
let images: BuiltImages;
let busybox: LocalImage;
let work: string;
let a: { site: ClusterSite; chart: SiteChart; device: string; file: string };
let b: { site: ClusterSite; chart: SiteChart; csi: SiteCsi };

async function rp(site: ClusterSite): Promise<PairObject> {
  return JSON.parse(await site.kubectlOk(['get', 'rp', PAIR, '-o', 'json'])) as PairObject;
}

type Status = NonNullable<PairObject['status']> & { fence?: { volume: string; pv: string; fencedNodes: string[]; holderPod?: string; node?: string; device?: string } };

async function status(site: ClusterSite): Promise<Status | undefined> {
  return (await rp(site)).status as Status | undefined;
}

interface PodJson {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { nodeName?: string; volumes?: { persistentVolumeClaim?: { claimName: string; readOnly?: boolean } }[]; containers: { image: string }[] };
  status: { phase?: string; containerStatuses?: { state?: { waiting?: { reason?: string } } }[] };
}

async function holderPods(): Promise<PodJson[]> {
  return (JSON.parse(await b.site.kubectlOk(['get', 'pods', '-l', 'app.kubernetes.io/component=secondary-holder', '-o', 'json'])) as { items: PodJson[] }).items;
}

function writer(name: string, claimName: string): object {
  return claimPod({ name, claimName, image: busybox.image, script: `cat /data/hello.txt && echo from-${name} >/data/${name}.txt && sync && echo written && exec sleep 3600` });
}

/** Reason and message of the pod's events, one line each. */
async function podEvents(site: ClusterSite, pod: string): Promise<string[]> {
  const out = await site.kubectlOk(['get', 'events', '--field-selector', `involvedObject.name=${pod}`, '-o', 'jsonpath={range .items[*]}{.reason}{"\\t"}{.message}{"\\n"}{end}']);
  return out.split('\n').filter((l) => l !== '');
}

/** The CSI proxy's JSON log on B. */
async function proxyLog(): Promise<{ message: string; [k: string]: unknown }[]> {
  const pods = await b.chart.pods('sidecar');
  const out = await b.chart.kubectlOk(['logs', pods[0]!.name, '-c', PROXY_CONTAINER]);
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { message: string });
}

/** B's fences as its sidecar's control API answers them (what the operator reads), through the CLI in the sidecar's container. */
async function fencesOnB(): Promise<{ pv: string; pair: string; hold: string; device: string; volume: string }[]> {
  const pod = (await b.chart.pods('sidecar'))[0]!;
  const socket = join(b.site.info.dir, 'blockmirror-state', 'control', 'control.sock');
  const out = await b.chart.kubectlOk(['exec', pod.name, '-c', 'sidecar', '--', 'node', '/app/dist/sidecar/cli/main.js', 'volume', 'fences', '--control', `unix://${socket}`]);
  return JSON.parse(out) as { pv: string; pair: string; hold: string; device: string; volume: string }[];
}

/** The lab driver's image of the secondary's volume on B (what its loop device writes to). */
async function secondaryImage(): Promise<string> {
  const pv = (await b.site.kubectlOk(['get', 'pvc', CLAIM, '-o', 'jsonpath={.spec.volumeName}'])).trim();
  const handle = (await b.site.kubectlOk(['get', 'pv', pv, '-o', 'jsonpath={.spec.csi.volumeHandle}'])).trim();
  return b.csi.imagePath(handle);
}

beforeAll(async () => {
  images = (await buildImages()).images;
  busybox = (await testImages()).busybox;
  work = await mkdtemp(join(tmpdir(), 'bm-secondary-fence-'));
  cleanup.track('work dir', () => rm(work, { recursive: true, force: true }));
  // Site A's volume: ext4 with a file in it, made before anything else exists.
  const content = join(work, 'content');
  await mkdir(content);
  await writeFile(join(content, 'hello.txt'), `${HELLO}\n`);
  const file = join(work, 'site-a.img');
  await runOk('truncate', ['-s', String(VOLUME), file]);
  await runOk('mkfs.ext4', ['-q', '-d', content, file]);
  const device = (await runOk('losetup', ['--find', '--show', file])).trim();
  cleanup.track(`loop device ${device}`, async () => void (await runOk('losetup', ['-d', device])));

  const started = Date.now();
  const start = async (name: string, extra: LocalImage[]): Promise<ClusterSite> => {
    cleanup.track(`site ${name}`, () => ClusterSite.down(join(work, name)));
    return ClusterSite.start(name, join(work, name), { sandbox: images.pause, images: [images.operator, images.sidecar, ...extra] });
  };
  const [siteA, siteB] = await Promise.all([start('fence-a', []), start('fence-b', [busybox])]);
  const sitesUp = Date.now();
  // B's driver first, registered by itself, as on a cluster where blockmirror comes later.
  cleanup.track('lab CSI driver', () => SiteCsi.down(siteB.info.dir));
  const csi = await SiteCsi.up(siteB);
  const caDir = join(work, 'peer-ca');
  const [chartA, chartB] = await Promise.all([
    SiteChart.install(siteA, { caDir, images }),
    SiteChart.install(siteB, { caDir, images, helmArgs: ['--set', `csiProxy.drivers[0].name=${DRIVER}`, '--set', `csiProxy.drivers[0].endpoint=${csi.info.socket}`] }),
  ]);
  cleanup.track('chart of site B', async () => void (await chartB.uninstall()));
  a = { site: siteA, chart: chartA, device, file };
  b = { site: siteB, chart: chartB, csi };
  const s = (ms: number): string => (ms / 1000).toFixed(1);
  process.stdout.write(`two sites up in ${s(sitesUp - started)} s; B's lab driver, then both charts Ready ${s(Date.now() - sitesUp)} s later (${s(Date.now() - started)} s in all)\n`);
}, 900_000);

afterAll(() => cleanup.releaseAll(), 300_000);

describe('a secondary on a CSI volume, fenced', () => {
  it("B's secondary on an opted-in claim: fenced on B's node, staged by a running holder pod, InSync; A's data is on B's volume", async () => {
    const t0 = Date.now();
    await b.site.kubectlOk(['apply', '-f', '-'], { input: await renderExample('examples/csi-secondary/site-b.yaml', { VOLUME_SIZE: `${VOLUME / MiB}Mi` }) });
    await a.site.kubectlOk(['apply', '-f', '-'], {
      input: await renderExample('examples/two-site/site-a.yaml', { VOLUME_SIZE: `${VOLUME / MiB}Mi`, VOLUME_PATH: a.device, NODE: a.site.node.name, REMOTE_ENDPOINT: b.chart.info.peerEndpoints[0]! }),
    });
    const node = b.site.node.name;
    // B: the fence, the holder pod, the device its node's proxy holds.
    const held = await waitFor('B\'s secondary InSync on the raw device its holder staged', async () => {
      const st = await status(b.site);
      return st?.state === 'InSync' && st.fence?.device !== undefined ? st : undefined;
    }, { timeoutMs: 180_000, intervalMs: 1000 });
    await waitFor("A's primary InSync", async () => (await status(a.site))?.state === 'InSync', { timeoutMs: 60_000, intervalMs: 500 });
    process.stdout.write(`secondary fenced, held and InSync ${((Date.now() - t0) / 1000).toFixed(1)} s after kubectl apply\n`);
    const pv = (await b.site.kubectlOk(['get', 'pvc', CLAIM, '-o', 'jsonpath={.spec.volumeName}'])).trim();
    expect(held.fence).toMatchObject({ volume: pv, fencedNodes: [node], node, device: expect.stringMatching(/^\/dev\/loop\d+$/) as unknown as string });
    expect(held.sidecar?.node).toBe(node);

    // The holder: running on B's node, the claim read-only, the sidecar's image.
    const [holder, ...more] = await holderPods();
    expect(more).toEqual([]);
    expect(holder!.metadata.name).toBe(held.fence!.holderPod);
    expect(holder!.status.phase).toBe('Running');
    expect(holder!.spec.nodeName).toBe(node);
    expect(holder!.spec.volumes).toContainEqual({ name: 'secondary', persistentVolumeClaim: { claimName: CLAIM, readOnly: true } });
    expect(holder!.spec.containers[0]!.image).toBe(images.sidecar.image);
    // What it sees of the volume: an empty read-only placeholder, not the filesystem written under.
    expect((await b.site.kubectlOk(['exec', holder!.metadata.name, '--', 'ls', '-A', '/secondary'])).trim()).toBe('');
    const w = await b.site.kubectl(['exec', holder!.metadata.name, '--', 'touch', '/secondary/x']);
    expect(w.code).not.toBe(0);
    expect(w.stderr).toMatch(/Read-only file system/);
    // B's proxy staged it fenced, the raw device only, and told its sidecar.
    expect(await proxyLog()).toContainEqual(expect.objectContaining({ message: 'fenced volume staged', device: held.fence!.device, pair: `default/${PAIR}` }));
    expect(await fencesOnB()).toEqual([{ pv: held.fence!.pv, pair: `default/${PAIR}`, hold: 'held', device: held.fence!.device, volume: pv }]);

    // What a user sees on B.
    const described = await b.site.kubectlOk(['describe', 'rp', PAIR]);
    process.stdout.write(`kubectl get pods -l app.kubernetes.io/component=secondary-holder; kubectl describe rp ${PAIR} (site B):\n${await b.site.kubectlOk(['get', 'pods', '-l', 'app.kubernetes.io/component=secondary-holder'])}${described}\n`);
    expect(described).toMatch(/Fence:\s*\n\s+Device:\s+\/dev\/loop\d+/);
    expect(described).toMatch(new RegExp(`Holder Pod:\\s+${holder!.metadata.name}`));
    expect(described).toMatch(/Normal\s+HolderCreated\s+.*stages volume/);
    expect(described).toMatch(/Status:\s+True\n\s+Type:\s+Ready/);

    // A's data (the filesystem made before the pair) is on B's volume, byte for byte.
    const image = await secondaryImage();
    const want = await sha256File(a.device);
    await waitFor("B's volume equal to A's", async () => (await sha256File(image)) === want, { timeoutMs: 30_000, intervalMs: 500 });
    // New writes through A's export reach it too.
    const address = (await status(a.site))?.exportAddress;
    const r = await a.site.inNetns('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 24M 1M', '-c', 'flush', `nbd://${address}/default.${PAIR}`], { timeoutMs: 120_000 });
    expect(r.code).toBe(0);
    await waitFor("A's primary InSync after the write", async () => (await status(a.site))?.state === 'InSync', { timeoutMs: 60_000, intervalMs: 500 });
    const after = await sha256File(a.device);
    expect(after).not.toBe(want);
    await waitFor("B's volume equal to A's after the write", async () => (await sha256File(image)) === after, { timeoutMs: 30_000, intervalMs: 500 });
  }, 360_000);

  it('a pod on B that mounts the secondary claim for writing stays ContainerCreating, its FailedMount event saying why; replication goes on', async () => {
    await b.site.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(writer('intruder', CLAIM)) });
    const pv = (await b.site.kubectlOk(['get', 'pvc', CLAIM, '-o', 'jsonpath={.spec.volumeName}'])).trim();
    const event = await waitFor('a FailedMount event with the fence\'s reason', async () => (await podEvents(b.site, 'intruder')).find((l) => l.startsWith('FailedMount\t') && l.includes('secondary of replication pair')), {
      timeoutMs: 120_000,
      intervalMs: 1000,
    });
    process.stdout.write(`the refused pod's event: ${event}\n`);
    expect(event).toContain('FailedPrecondition');
    expect(event).toContain(`volume ${pv} is the secondary of replication pair default/${PAIR}: blocks are written under it, so it cannot be published for writing until it is promoted`);
    const pod = JSON.parse(await b.site.kubectlOk(['get', 'pod', 'intruder', '-o', 'json'])) as PodJson;
    expect(pod.status.phase).toBe('Pending');
    expect(pod.status.containerStatuses?.[0]?.state?.waiting?.reason).toBe('ContainerCreating');
    // Its refusal is the proxy's, logged; the pair goes on.
    expect(await proxyLog()).toContainEqual(expect.objectContaining({ message: 'publish for writing refused: the volume is fenced', pair: `default/${PAIR}` }));
    expect((await status(a.site))?.state).toBe('InSync');
    expect((await status(b.site))?.state).toBe('InSync');
    await b.site.kubectlOk(['delete', 'pod', 'intruder', '--wait=true', '--timeout=60s']);
  }, 180_000);

  it('deleting the pair removes the holder pod and the fence; then a pod on B mounts the volume for writing and reads the file A wrote', async () => {
    const image = await secondaryImage();
    const pv = (await b.site.kubectlOk(['get', 'pvc', CLAIM, '-o', 'jsonpath={.spec.volumeName}'])).trim();
    const handle = (await b.site.kubectlOk(['get', 'pv', pv, '-o', 'jsonpath={.spec.csi.volumeHandle}'])).trim();
    const fences = join(b.site.info.dir, 'blockmirror-state', 'fences');
    expect((await readdir(fences)).filter((f) => f.endsWith('.json'))).toHaveLength(1);
    const t0 = Date.now();
    await a.site.kubectlOk(['delete', 'rp', PAIR, '--wait=true', '--timeout=60s']);
    await b.site.kubectlOk(['delete', 'rp', PAIR, '--wait=true', '--timeout=120s']);
    process.stdout.write(`secondary pair, holder pod and fence gone ${((Date.now() - t0) / 1000).toFixed(1)} s after kubectl delete\n`);
    expect(await holderPods()).toEqual([]);
    expect(await fencesOnB()).toEqual([]);
    expect((await readdir(fences)).filter((f) => f.endsWith('.json'))).toEqual([]);
    // The holder's fenced staging was given back to the driver.
    await waitFor('the fenced volume unstaged on B', async () => (await b.csi.logged('lab volume unstaged', { id: handle })).length > 0, { timeoutMs: 60_000, intervalMs: 500 });
    expect(await proxyLog()).toContainEqual(expect.objectContaining({ message: 'fenced volume unstaged', volumeId: handle }));
    const events = await b.site.kubectlOk(['get', 'events', '--field-selector', `involvedObject.name=${PAIR},involvedObject.kind=ReplicationPair`, '-o', 'jsonpath={range .items[*]}{.reason}{"\\n"}{end}']);
    expect(events.split('\n')).toEqual(expect.arrayContaining(['HolderCreated', 'HolderDeleted', 'Unfenced', 'Deleted']));

    // The claim's class opts in to the splice, which B's host node cannot do: a pod on it
    // is now refused for that reason, no longer for the fence.
    await b.site.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(writer('after', CLAIM)) });
    const refusal = await waitFor('a FailedMount event of the splice', async () => (await podEvents(b.site, 'after')).find((l) => l.startsWith('FailedMount\t')), { timeoutMs: 120_000, intervalMs: 1000 });
    expect(refusal).toContain('node cannot splice');
    expect(refusal).not.toContain('secondary of replication pair');
    await b.site.kubectlOk(['delete', 'pod', 'after', '--wait=true', '--timeout=60s']);

    // The same volume seen through a PersistentVolume that does not opt in (what a node
    // without device-mapper can mount): a pod writes to it and reads A's file.
    const plain = [
      {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: 'db-data-plain' },
        spec: {
          capacity: { storage: `${VOLUME / MiB}Mi` },
          accessModes: ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Retain',
          storageClassName: '',
          volumeMode: 'Filesystem',
          csi: { driver: DRIVER, volumeHandle: handle, fsType: 'ext4' },
          claimRef: { namespace: 'default', name: 'db-data-plain' },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'db-data-plain', namespace: 'default' },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: '', volumeMode: 'Filesystem', volumeName: 'db-data-plain', resources: { requests: { storage: `${VOLUME / MiB}Mi` } } },
      },
      writer('reader', 'db-data-plain'),
    ];
    await b.site.kubectlOk(['apply', '-f', '-'], { input: plain.map((o) => JSON.stringify(o)).join('\n---\n') });
    await waitFor('the reader to write', async () => (await b.site.kubectl(['logs', 'reader'])).stdout.includes('written'), { timeoutMs: 120_000, intervalMs: 1000 });
    expect((await b.site.kubectlOk(['logs', 'reader'])).split('\n')[0]).toBe(HELLO);
    expect((await b.site.kubectlOk(['exec', 'reader', '--', 'cat', '/data/reader.txt'])).trim()).toBe('from-reader');
    await b.site.kubectlOk(['delete', 'pod', 'reader', '--wait=true', '--timeout=60s']);
    // Written for real: the volume changed after the pair went.
    expect(await sha256File(image)).not.toBe(await sha256File(a.device));
    await b.site.kubectlOk(['delete', 'pvc', 'db-data-plain', '--wait=true', '--timeout=60s']);
    await b.site.kubectlOk(['delete', 'pv', 'db-data-plain', '--wait=true', '--timeout=60s']);
  }, 300_000);
});
