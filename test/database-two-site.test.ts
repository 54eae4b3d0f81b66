import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImages, type BuiltImages } from './helpers/build-images.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { ClusterSite } from './helpers/cluster-site.js';
import { renderExample, type PairObject } from './helpers/kube-site.js';
import { sparseFile } from './helpers/replication-harness.js';
import { run, runOk } from './helpers/run-cli.js';
import { REPO_ROOT } from './helpers/sidecar-process.js';
import { SiteChart, type ChartPod } from './helpers/site-chart.js';
import { mountExport } from './helpers/nbd-fuse-mount.js';
import { checkDatabase, commitRows } from './helpers/sqlite-check.js';
import { VmNode } from './helpers/vm-node.js';
import { waitFor } from './helpers/wait-for.js';

// The user's flow end to end, with no manual sidecar or volume command. Site A: a node in
// the VM test bed (the host's kernel has no device-mapper or NBD) running the lab CSI
// driver, and the chart installed by helm with the CSI node proxy wrapping that driver;
// a StorageClass that opts in; a claim and a pod running a real database (SQLite, WAL,
// synchronous=FULL: every commit fsync'd) writing continuously. Site B: a host node with
// the chart, and a `local` volume for the secondary. `kubectl apply` of the secondary and
// the primary ReplicationPair; the operator puts the pod's writes through the tap, the
// pair reaches InSync, and B's copy holds every committed transaction and opens cleanly.
// The guest reaches site B's peer port through a forward (10.127.<A>.250:7401), and the
// operator on A's host node the guest sidecar's control port through another.

const KiB = 1024;
const MiB = 1024 * 1024;
const VOLUME = 64 * MiB;
const PAIR = 'db-data';
const DRIVER = 'lab.csi.blockmirror.io';
const WRITER = join(REPO_ROOT, 'examples', 'database', 'sqlite-writer.mjs');
const RAW_VOLUME = 16 * MiB;
const RAW_PAIR = 'raw-data';
const RECORD = 4096;

// A writer on a Block-mode claim: record i (its number, then filler) at offset i * 4 KiB,
// each written with O_DSYNC (durable when the write returns), wrapping around the volume;
// prints `wrote N` once a second; SIGUSR1 holds (`holding: last wrote N`).
const RAW_WRITER = `
const fs = require('fs');
const fd = fs.openSync('/dev/xvda', fs.constants.O_RDWR | fs.constants.O_DSYNC);
const slots = ${RAW_VOLUME / RECORD};
let n = 0, hold = false, printed = 0;
process.on('SIGUSR1', () => { hold = !hold; console.log(hold ? 'holding: last wrote ' + n : 'going on after ' + n); });
process.on('SIGTERM', () => process.exit(0));
const tick = () => {
  if (!hold) {
    const b = Buffer.alloc(${RECORD}, (n + 1) % 251);
    b.write('rec:' + (n + 1) + ':', 0);
    fs.writeSync(fd, b, 0, b.length, (n % slots) * ${RECORD});
    n++;
    if (Date.now() - printed >= 1000) { console.log('wrote ' + n); printed = Date.now(); }
  }
  setTimeout(tick, hold ? 200 : 50);
};
tick();`;

const cleanup = new CleanupStack();
let images: BuiltImages;
let work: string;
let siteA: ClusterSite;
let siteB: ClusterSite;
let vm: VmNode;
let chartA: SiteChart;
let chartB: SiteChart;
/** Site B's loop device under its `local` PV. */
let deviceB: string;
/** Site B's loop device under the Block-mode secondary. */
let rawB: string;

async function pairStatus(site: ClusterSite): Promise<PairObject['status']> {
  const r = await site.kubectl(['get', 'rp', PAIR, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as PairObject).status : undefined;
}

function condition(status: PairObject['status'], type: string): { status: string; reason: string; message: string } | undefined {
  return status?.conditions?.find((c) => c.type === type);
}

/** A pair's status with the role fields (kube-site's PairObject lists the common ones). */
type RoleStatus = NonNullable<PairObject['status']> & { role?: string; appliedRole?: string; generation?: string; fenced?: boolean; fence?: { pv: string } };

async function roleStatus(site: ClusterSite): Promise<RoleStatus | undefined> {
  return (await pairStatus(site)) as RoleStatus | undefined;
}

/** The database pair as its sidecar on `node` reports it (the CLI in the sidecar container; slow under TCG). */
async function sidecarPairJson(site: ClusterSite, chart: SiteChart, node: string): Promise<{ bytesOnWire: number; generation: string; state: string; role: string }> {
  const pods = (await chart.pods('sidecar')).filter((p) => p.node === node);
  if (pods.length !== 1) throw new Error(`${pods.length} sidecar pods on ${node}`);
  // The chart puts the socket under sidecar.stateDir, which differs between the sites.
  const pod = JSON.parse(await chart.kubectlOk(['get', 'pod', pods[0]!.name, '-o', 'json'])) as { spec: { containers: { name: string; args?: string[] }[] } };
  const socket = pod.spec.containers.find((c) => c.name === 'sidecar')?.args?.find((a) => a.startsWith('--control-socket='))?.slice('--control-socket='.length);
  if (socket === undefined) throw new Error(`sidecar pod ${pods[0]!.name} has no --control-socket`);
  const out = await site.kubectlOk(['-n', chart.info.namespace, 'exec', pods[0]!.name, '-c', 'sidecar', '--', 'node', '/app/dist/sidecar/cli/main.js', 'pair', 'status', `default.${PAIR}`, '-o', 'json', '--control', `unix://${socket}`], { timeoutMs: 300_000 });
  return JSON.parse(out) as { bytesOnWire: number; generation: string; state: string; role: string };
}

async function pairEvents(site: ClusterSite): Promise<string> {
  return site.kubectlOk(['get', 'events', '--field-selector', `involvedObject.name=${PAIR}`, '-o', 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}']);
}

/**
 * What a wait of the switchover shows when it times out: each site's pair and its events,
 * and the last lines of every blockmirror pod's log (a run that kept none could not tell a
 * stalled guest from a stuck pair).
 */
async function switchoverDiagnostics(): Promise<string> {
  const out: string[] = [];
  for (const [site, chart] of [[siteA, chartA], [siteB, chartB]] as const) {
    const rp = await site.kubectl(['get', 'rp', PAIR, '-o', 'yaml']);
    out.push(`--- ${site.name}: rp ${PAIR}`, (rp.stdout + rp.stderr).trimEnd());
    out.push(`--- ${site.name}: events of ${PAIR}`, await pairEvents(site).catch((err: Error) => err.message));
    out.push(await chart.logs(80).catch((err: Error) => `--- ${site.name}: no pod logs: ${err.message}`));
  }
  return out.join('\n');
}

/** The last `committed N` (or `holding: last committed N`) the writer printed. */
async function lastCommitted(): Promise<number> {
  const log = await siteA.kubectlOk(['logs', 'db', '--tail=50']);
  const all = [...log.matchAll(/committed (\d+)/g)].map((m) => Number(m[1]));
  if (all.length === 0) throw new Error(`the writer printed no commit yet:\n${log}`);
  return all[all.length - 1]!;
}

/** Commits go on: a number above `than` is printed within the deadline. */
async function commitsPass(than: number, what: string, timeoutMs = 180_000): Promise<number> {
  return waitFor(`${what}: the database commits past ${than}`, async () => {
    const n = await lastCommitted();
    return n > than ? n : undefined;
  }, { timeoutMs, intervalMs: 2_000 });
}

/** Site B's peer port as site A's VM node reaches it: its forward out of the guest. */
function remoteEndpoint(): string {
  return `${vm.node.address.split('.').slice(0, 3).join('.')}.250:7401`;
}

async function sidecarOnVm(): Promise<ChartPod> {
  const pods = (await chartA.pods('sidecar')).filter((p) => p.node === vm.node.name);
  if (pods.length !== 1) throw new Error(`${pods.length} sidecar pods on ${vm.node.name}`);
  return pods[0]!;
}

/**
 * What site B holds, as a database: its device copied (the secondary's sidecar keeps it
 * open), the copy's ext4 journal replayed, the database files dumped from it without a
 * mount, then opened by SQLite (which applies the WAL). Rows, the highest sequence number,
 * and SQLite's integrity check.
 */
async function databaseOnB(tag: string): Promise<{ rows: number; maxSeq: number; integrity: string; fsck: string }> {
  const copy = join(work, `b-${tag}.img`);
  await runOk('dd', [`if=${deviceB}`, `of=${copy}`, 'bs=1M', 'status=none']);
  // 0: clean; 1: errors corrected (the journal replayed). Anything else fails the test.
  const fsck = await run('e2fsck', ['-fy', copy]);
  if (fsck.code === null || fsck.code > 1) throw new Error(`e2fsck of site B's copy exited ${fsck.code}:\n${fsck.stdout}${fsck.stderr}`);
  const dir = join(work, `b-${tag}`);
  await runOk('mkdir', ['-p', dir]);
  for (const f of ['db.sqlite', 'db.sqlite-wal']) {
    await runOk('debugfs', ['-R', `dump /${f} ${join(dir, f)}`, copy]);
  }
  const out = await checkDatabase(join(dir, 'db.sqlite'));
  await rm(copy, { force: true });
  return { ...out, fsck: `${fsck.code}` };
}

beforeAll(async () => {
  images = (await buildImages()).images;
  work = await mkdtemp(join(tmpdir(), 'bm-db-two-site-'));
  cleanup.track('work dir', () => rm(work, { recursive: true, force: true }));
  const file = join(work, 'site-b.img');
  await sparseFile(file, VOLUME);
  deviceB = (await runOk('losetup', ['--find', '--show', file])).trim();
  cleanup.track(`loop device ${deviceB}`, async () => void (await runOk('losetup', ['-d', deviceB])));
  const rawFile = join(work, 'site-b-raw.img');
  await sparseFile(rawFile, RAW_VOLUME);
  rawB = (await runOk('losetup', ['--find', '--show', rawFile])).trim();
  cleanup.track(`loop device ${rawB}`, async () => void (await runOk('losetup', ['-d', rawB])));

  const started = Date.now();
  const start = async (name: string): Promise<ClusterSite> => {
    cleanup.track(`site ${name}`, () => ClusterSite.down(join(work, name)));
    return ClusterSite.start(name, join(work, name), { sandbox: images.pause, images: [images.operator, images.sidecar] });
  };
  [siteA, siteB] = await Promise.all([start('site-a'), start('site-b')]);
  const caDir = join(work, 'peer-ca');
  // Site B's chart meanwhile; site A's waits for its VM node, where its sidecar runs.
  const installB = SiteChart.install(siteB, { caDir, images });
  cleanup.track('VM node', () => VmNode.down(siteA.info.dir));
  vm = await VmNode.join(siteA, {
    images: [images.operator, images.sidecar],
    labCsi: true,
    forwards: [`7401=${siteB.node.address}:7401`],
    // The sidecar's control port (the operator), and its peer port (site B, once promoted).
    expose: [7400, 7401],
    timeoutMs: 1_500_000,
  });
  chartB = await installB;
  // Site B's primaries reach the guest's peer port at A's node address once B is promoted
  // (the switchover case): a DNAT in A's namespace to the 127.0.0.1 port qemu forwards into
  // the guest for the second --expose (hack/site-vm-node.sh's expose_port: 21000 + 8 K + i).
  await runOk('nsenter', [`--net=/run/netns/${siteA.info.netns}`, '--', 'iptables', '-t', 'nat', '-I', 'PREROUTING', '1', '-d', `${siteA.node.address}/32`, '-p', 'tcp', '--dport', '7401', '-j', 'DNAT', '--to-destination', `127.0.0.1:${21000 + 8 * 2 + 1}`]);
  chartA = await SiteChart.install(siteA, {
    caDir,
    images,
    helmArgs: [
      // The sidecar (and the CSI proxy) on the VM node only: it alone can splice, and its
      // kubelet is the standard one; the operator on the host node.
      '--set-json', `sidecar.nodeSelector={"blockmirror.io/node-kernel":"vm"}`,
      '--set', 'sidecar.kubeletDir=/var/lib/kubelet',
      '--set', 'sidecar.stateDir=/var/lib/blockmirror',
      '--set-json', `operator.nodeSelector={"kubernetes.io/hostname":"${siteA.node.name}"}`,
      '--set-json', `csiProxy.drivers=[{"name":"${DRIVER}","endpoint":"/var/lib/kubelet/plugins/${DRIVER}/csi.sock"}]`,
    ],
  });
  process.stdout.write(`sites, VM node and charts ready in ${((Date.now() - started) / 1000).toFixed(1)} s:\n${vm.upLog}${chartA.log}`);
}, 2_400_000);

afterAll(() => cleanup.releaseAll(), 300_000);

describe("a database pod's writes replicated to the other site, driven by the operator", () => {
  it('a claim of an opted-in StorageClass is staged through the splice: the pod writes to /dev/mapper/blockmirror-<pv>', async () => {
    // What the README's user does, from examples/database.
    await siteA.kubectlOk(['create', 'configmap', 'db-writer', `--from-file=sqlite-writer.mjs=${WRITER}`]);
    await siteA.kubectlOk(['apply', '-f', join(REPO_ROOT, 'examples', 'database', 'storage-class.yaml')]);
    const site = await renderExample('examples/database/site-a.yaml', { VOLUME_SIZE: `${VOLUME / MiB}Mi`, NODE: vm.node.name, IMAGE: images.sidecar.image, REMOTE_ENDPOINT: remoteEndpoint() });
    // The claim and the pod first; the pair once the secondary exists (next test).
    await siteA.kubectlOk(['apply', '-f', '-'], { input: site.split(/^---$/m).filter((d) => !d.includes('kind: ReplicationPair')).join('---') });
    await waitFor('pod db Running', async () => (await siteA.kubectlOk(['get', 'pod', 'db', '-o', 'jsonpath={.status.phase}'])) === 'Running', { timeoutMs: 400_000, intervalMs: 2_000 });
    await commitsPass(0, 'before any pair');
    const pv = (await siteA.kubectlOk(['get', 'pvc', 'db', '-o', 'jsonpath={.spec.volumeName}'])).trim();
    const mounts = await siteA.kubectlOk(['exec', 'db', '--', 'cat', '/proc/self/mountinfo'], { timeoutMs: 120_000 });
    const data = mounts.split('\n').find((l) => l.split(' ')[4] === '/data');
    expect(data?.split(' - ')[1]?.split(' ')[1]).toBe(`/dev/mapper/blockmirror-${pv}`);
  }, 900_000);

  it('kubectl apply of the secondary and the primary: the pair reaches InSync with no manual command, and the writes pass the tap', async () => {
    await siteB.kubectlOk(['apply', '-f', '-'], { input: await renderExample('examples/database/site-b.yaml', { VOLUME_SIZE: `${VOLUME / MiB}Mi`, NODE: siteB.node.name, VOLUME_PATH: deviceB }) });
    await siteA.kubectlOk(['apply', '-f', '-'], {
      input: await renderExample('examples/database/site-a.yaml', { VOLUME_SIZE: `${VOLUME / MiB}Mi`, NODE: vm.node.name, IMAGE: images.sidecar.image, REMOTE_ENDPOINT: remoteEndpoint() }),
    });
    const seen = new Set<string>();
    await waitFor('the primary InSync', async () => {
      const st = await pairStatus(siteA);
      if (st?.state !== undefined) seen.add(st.state);
      return st?.state === 'InSync';
    }, { timeoutMs: 600_000, intervalMs: 2_000 });
    // No suspended state on the way, and Synchronized only with the tap in place.
    expect([...seen].filter((s) => !['Pending', 'Initializing', 'Resyncing', 'Retrying', 'InSync'].includes(s))).toEqual([]);
    const st = await pairStatus(siteA);
    expect(condition(st, 'Synchronized')).toMatchObject({ status: 'True' });
    expect(condition(st, 'Ready')).toMatchObject({ status: 'True' });
    expect(st?.sidecar?.node).toBe(vm.node.name);
    const events = await siteA.kubectlOk(['get', 'events', '--field-selector', `involvedObject.name=${PAIR}`, '-o', 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}']);
    expect(events).toMatch(/Attached: every write to \/dev\/mapper\/blockmirror-\S+ on node \S+ now passes the tap \(\/dev\/nbd\d+\)/);
    await waitFor('the secondary InSync on site B', async () => (await pairStatus(siteB))?.state === 'Replicating' || (await pairStatus(siteB))?.state === 'InSync', { timeoutMs: 60_000, intervalMs: 1_000 });
    process.stdout.write(`${await siteA.kubectlOk(['get', 'rp', '-o', 'wide'])}${await siteB.kubectlOk(['get', 'rp', '-o', 'wide'])}`);
  }, 900_000);

  it('paused (detached live, the database writing on), site B holds every transaction committed before, and opens cleanly', async () => {
    const before = await commitsPass(await lastCommitted(), 'replicating');
    await siteA.kubectlOk(['patch', 'rp', PAIR, '--type=merge', '-p', '{"spec":{"paused":true}}']);
    await waitFor('the primary Paused', async () => (await pairStatus(siteA))?.state === 'Paused', { timeoutMs: 300_000, intervalMs: 1_000 });
    const db = await databaseOnB('paused');
    expect(db.integrity).toBe('ok');
    expect(db.maxSeq).toBeGreaterThanOrEqual(before);
    // Every transaction, no hole: one row per sequence number.
    expect(db.rows).toBe(db.maxSeq);
    // The application never noticed: it writes on, directly (dm-era records the blocks).
    await commitsPass(await lastCommitted(), 'paused');
    await siteA.kubectlOk(['patch', 'rp', PAIR, '--type=merge', '-p', '{"spec":{"paused":false}}']);
    await waitFor('the primary InSync again after resume', async () => (await pairStatus(siteA))?.state === 'InSync', { timeoutMs: 600_000, intervalMs: 1_000 });
  }, 1_200_000);

  it('kill -9 of the sidecar while the database writes: it stalls, does not fail, goes on; no full resync', async () => {
    const pod = await sidecarOnVm();
    const before = await lastCommitted();
    // The sidecar process itself (its supervisor restarts it in place); by /proc, as the
    // image has no pkill.
    const kill = `for (const p of require('fs').readdirSync('/proc').filter((d) => /^\\d+$/.test(d))) {
      const cmd = require('fs').readFileSync('/proc/' + p + '/cmdline', 'utf8').split('\\0');
      if (cmd.includes('sidecar') && !cmd.includes('supervise') && Number(p) !== process.pid) { process.kill(Number(p), 'SIGKILL'); console.log('killed ' + p); }
    }`;
    const out = await chartA.kubectlOk(['exec', pod.name, '-c', 'sidecar', '--', 'node', '-e', kill]);
    expect(out).toMatch(/killed \d+/);
    const states = new Set<string>();
    const after = await waitFor('commits past the kill', async () => {
      const st = await pairStatus(siteA);
      if (st?.state !== undefined) states.add(st.state);
      const n = await lastCommitted();
      return n > before + 20 ? n : undefined;
    }, { timeoutMs: 600_000, intervalMs: 2_000 });
    expect(after).toBeGreaterThan(before);
    await waitFor('InSync after the kill', async () => {
      const st = await pairStatus(siteA);
      if (st?.state !== undefined) states.add(st.state);
      return st?.state === 'InSync';
    }, { timeoutMs: 600_000, intervalMs: 1_000 });
    // The database never failed: its container was never restarted.
    const restarts = await siteA.kubectlOk(['get', 'pod', 'db', '-o', 'jsonpath={.status.containerStatuses[0].restartCount}']);
    expect(restarts.trim()).toBe('0');
    // A full resync would show Initializing (the initial copy) again.
    expect(states.has('Initializing')).toBe(false);
  }, 1_500_000);

  it('with the writes held, site B holds exactly the last committed transaction', async () => {
    await siteA.kubectlOk(['exec', 'db', '--', 'node', '-e', "process.kill(1, 'SIGUSR1')"]);
    const held = await waitFor('the writer holding', async () => {
      const m = /holding: last committed (\d+)/.exec(await siteA.kubectlOk(['logs', 'db', '--tail=20']));
      return m ? Number(m[1]) : undefined;
    }, { timeoutMs: 60_000, intervalMs: 1_000 });
    await waitFor('InSync, nothing out of sync', async () => {
      const st = await pairStatus(siteA);
      return st?.state === 'InSync' && st.outOfSyncBytes === 0;
    }, { timeoutMs: 300_000, intervalMs: 1_000 });
    // Frozen for the copy: the secondary applies nothing while the primary is paused.
    await siteA.kubectlOk(['patch', 'rp', PAIR, '--type=merge', '-p', '{"spec":{"paused":true}}']);
    await waitFor('the primary Paused', async () => (await pairStatus(siteA))?.state === 'Paused', { timeoutMs: 300_000, intervalMs: 1_000 });
    const db = await databaseOnB('held');
    expect(db).toMatchObject({ integrity: 'ok', maxSeq: held, rows: held });
  }, 900_000);

  it('a Block-mode claim of the opted-in class: the pod writes to the spliced device node itself, the pair reaches InSync, and site B holds every record written', async () => {
    const claim = (site: 'a' | 'b'): object => ({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'raw', namespace: 'default' },
      spec: {
        accessModes: ['ReadWriteOnce'],
        volumeMode: 'Block',
        resources: { requests: { storage: `${RAW_VOLUME / MiB}Mi` } },
        ...(site === 'a' ? { storageClassName: 'lab-csi-replicated' } : { storageClassName: '', volumeName: 'raw-replica' }),
      },
    });
    const replica = {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: 'raw-replica' },
      spec: {
        capacity: { storage: `${RAW_VOLUME / MiB}Mi` },
        accessModes: ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Retain',
        storageClassName: '',
        volumeMode: 'Block',
        local: { path: rawB },
        nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [siteB.node.name] }] }] } },
        claimRef: { namespace: 'default', name: 'raw' },
      },
    };
    const pair = (role: 'primary' | 'secondary'): object => ({
      apiVersion: 'blockmirror.io/v1alpha1',
      kind: 'ReplicationPair',
      metadata: { name: RAW_PAIR, namespace: 'default' },
      spec: { pvcName: 'raw', role, mode: 'sync', ...(role === 'primary' ? { remote: { endpoint: remoteEndpoint() } } : {}) },
    });
    const writer = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'raw-writer', namespace: 'default' },
      spec: {
        nodeName: vm.node.name,
        terminationGracePeriodSeconds: 5,
        containers: [{ name: 'w', image: images.sidecar.image, imagePullPolicy: 'IfNotPresent', command: ['node', '-e', RAW_WRITER], volumeDevices: [{ name: 'raw', devicePath: '/dev/xvda' }] }],
        volumes: [{ name: 'raw', persistentVolumeClaim: { claimName: 'raw' } }],
      },
    };
    const lastWrote = async (): Promise<number> => {
      const all = [...(await siteA.kubectlOk(['logs', 'raw-writer', '--tail=20'])).matchAll(/wrote (\d+)/g)].map((m) => Number(m[1]));
      if (all.length === 0) throw new Error('the raw writer printed nothing yet');
      return all[all.length - 1]!;
    };
    const rawStatus = async (site: ClusterSite): Promise<PairObject['status']> => {
      const r = await site.kubectl(['get', 'rp', RAW_PAIR, '-o', 'json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as PairObject).status : undefined;
    };

    await siteA.kubectlOk(['apply', '-f', '-'], { input: [claim('a'), writer].map((o) => JSON.stringify(o)).join('\n') });
    await waitFor('pod raw-writer Running', async () => (await siteA.kubectlOk(['get', 'pod', 'raw-writer', '-o', 'jsonpath={.status.phase}'])) === 'Running', { timeoutMs: 400_000, intervalMs: 2_000 });
    const first = await waitFor('the raw writer writing', () => lastWrote().catch(() => undefined), { timeoutMs: 120_000, intervalMs: 2_000 });
    // The pod's device node is the splice's device-mapper device, not the driver's raw one.
    const pv = (await siteA.kubectlOk(['get', 'pvc', 'raw', '-o', 'jsonpath={.spec.volumeName}'])).trim();
    const rdev = "const r = require('fs').statSync(process.argv[1]).rdev; console.log(((r >> 8) & 0xfff) + ':' + ((r & 0xff) | ((r >> 12) & 0xfff00)))";
    const inPod = (await siteA.kubectlOk(['exec', 'raw-writer', '--', 'node', '-e', rdev, '/dev/xvda'])).trim();
    const sidecar = await sidecarOnVm();
    const dm = (await chartA.kubectlOk(['exec', sidecar.name, '-c', 'sidecar', '--', 'node', '-e', rdev, `/dev/mapper/blockmirror-${pv}`])).trim();
    expect(inPod).toMatch(/^\d+:\d+$/);
    expect(inPod).toBe(dm);

    await siteB.kubectlOk(['apply', '-f', '-'], { input: [replica, claim('b'), pair('secondary')].map((o) => JSON.stringify(o)).join('\n') });
    await siteA.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(pair('primary')) });
    await waitFor('the Block pair InSync', async () => (await rawStatus(siteA))?.state === 'InSync', { timeoutMs: 600_000, intervalMs: 2_000 });
    const events = await siteA.kubectlOk(['get', 'events', '--field-selector', `involvedObject.name=${RAW_PAIR}`, '-o', 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}']);
    expect(events).toMatch(/Attached: every write to \/dev\/mapper\/blockmirror-\S+ on node \S+ now passes the tap/);
    await waitFor('records written past InSync', async () => ((await lastWrote()) > first + 20 ? true : undefined), { timeoutMs: 180_000, intervalMs: 2_000 });

    // Held, in sync with nothing out of sync, paused: B's device has every record written.
    await siteA.kubectlOk(['exec', 'raw-writer', '--', 'node', '-e', "process.kill(1, 'SIGUSR1')"]);
    const held = await waitFor('the raw writer holding', async () => {
      const m = /holding: last wrote (\d+)/.exec(await siteA.kubectlOk(['logs', 'raw-writer', '--tail=20']));
      return m ? Number(m[1]) : undefined;
    }, { timeoutMs: 60_000, intervalMs: 1_000 });
    await waitFor('the Block pair InSync, nothing out of sync', async () => {
      const st = await rawStatus(siteA);
      return st?.state === 'InSync' && st.outOfSyncBytes === 0;
    }, { timeoutMs: 120_000, intervalMs: 1_000 });
    await siteA.kubectlOk(['patch', 'rp', RAW_PAIR, '--type=merge', '-p', '{"spec":{"paused":true}}']);
    await waitFor('the Block pair Paused', async () => (await rawStatus(siteA))?.state === 'Paused', { timeoutMs: 120_000, intervalMs: 1_000 });
    const copy = await readFile(rawB);
    const slots = RAW_VOLUME / RECORD;
    const wrong: number[] = [];
    // The last `slots` records are on the volume (older ones were written over).
    for (let n = Math.max(1, held - slots + 1); n <= held; n++) {
      const at = ((n - 1) % slots) * RECORD;
      if (copy.subarray(at, at + 16).toString('latin1').split(':').slice(0, 2).join(':') !== `rec:${n}`) wrong.push(n);
    }
    expect({ held, wrong: wrong.slice(0, 10), missing: wrong.length }).toEqual({ held, wrong: [], missing: 0 });

    // Gone again: the pair detaches live, the writer and the claim go, the node keeps nothing of it.
    await siteA.kubectlOk(['delete', 'rp', RAW_PAIR, '--timeout=120s'], { timeoutMs: 150_000 });
    await siteB.kubectlOk(['delete', 'rp', RAW_PAIR, '--timeout=120s'], { timeoutMs: 150_000 });
    await siteA.kubectlOk(['delete', 'pod', 'raw-writer', '--timeout=180s'], { timeoutMs: 200_000 });
    await siteA.kubectlOk(['delete', 'pvc', 'raw', '--timeout=180s'], { timeoutMs: 200_000 });
    // Read with dmsetup and ls, not the CLI: a node start in the TCG guest can outlast a poll.
    const left = await waitFor(`volume ${pv} unstaged from the splice`, async () => {
      const ls = await chartA.kubectlOk(['exec', sidecar.name, '-c', 'sidecar', '--', 'sh', '-c', 'dmsetup ls; ls /var/lib/blockmirror/splices/ 2>/dev/null; true']);
      return ls.includes(pv) ? undefined : ls;
    }, { timeoutMs: 300_000, intervalMs: 2_000 });
    expect(left).not.toContain(pv);
  }, 1_200_000);

  it('a pod on site B that mounts the secondary for writing is refused, with the reason in its events', async () => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'intruder', namespace: 'default' },
      spec: {
        nodeName: siteB.node.name,
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'c', image: images.sidecar.image, imagePullPolicy: 'Never', command: ['sleep', '3600'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'db' } }],
      },
    };
    await siteB.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(pod) });
    const why = await waitFor('a FailedMount event of the intruder', async () => {
      const ev = await siteB.kubectlOk(['get', 'events', '--field-selector', 'involvedObject.name=intruder,reason=FailedMount', '-o', 'jsonpath={range .items[*]}{.message}{"\\n"}{end}']);
      return ev.trim() !== '' ? ev : undefined;
    }, { timeoutMs: 180_000, intervalMs: 1_000 }).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}\n${await siteB.kubectlOk(['describe', 'pod', 'intruder'])}`);
    });
    expect(why).toMatch(/busy/i);
    expect(await siteB.kubectlOk(['get', 'pod', 'intruder', '-o', 'jsonpath={.status.phase}'])).toBe('Pending');
    await siteB.kubectlOk(['delete', 'pod', 'intruder', '--wait=false']);
  }, 200_000);

  it('switchover to site B and back by kubectl patch: A demotes once its pod is gone, each direction ships only a delta, and each side holds every committed transaction', async () => {
    const FIVE_PERCENT = VOLUME / 20;
    const report: string[] = [];
    // From the cases before: the writes held, the pair paused. Both go on.
    await siteA.kubectlOk(['exec', 'db', '--', 'node', '-e', "process.kill(1, 'SIGUSR1')"]);
    await siteA.kubectlOk(['patch', 'rp', PAIR, '--type=merge', '-p', '{"spec":{"paused":false}}']);
    await waitFor('the primary InSync after resume', async () => (await pairStatus(siteA))?.state === 'InSync', { timeoutMs: 600_000, intervalMs: 1_000 });
    await commitsPass(await lastCommitted(), 'attached again');
    // A pod on B's claim would have B's primary written around: the intruder must be gone.
    await waitFor('the intruder gone from site B', async () => (await siteB.kubectl(['get', 'pod', 'intruder'])).code !== 0, { timeoutMs: 180_000, intervalMs: 1_000 });
    // The holder pod must go where the CSI proxy is (the VM node): A's host node takes no pod meanwhile.
    await siteA.kubectlOk(['cordon', siteA.node.name]);
    const uncordon = cleanup.track(`uncordon ${siteA.node.name}`, async () => void (await siteA.kubectl(['uncordon', siteA.node.name])));
    const pv = (await siteA.kubectlOk(['get', 'pvc', 'db', '-o', 'jsonpath={.spec.volumeName}'])).trim();

    // 1. A demoted. The volume is fenced first; the pair waits for the application to stop.
    const going = await lastCommitted();
    await siteA.kubectlOk(['exec', 'db', '--', 'node', '-e', "process.kill(1, 'SIGUSR1')"]);
    // The last `holding` line: the log still has the one of the case before.
    const onA = await waitFor('the writer holding', async () => {
      const held = [...(await siteA.kubectlOk(['logs', 'db', '--tail=20'])).matchAll(/holding: last committed (\d+)/g)].map((m) => Number(m[1]));
      const last = held.at(-1);
      return last !== undefined && last >= going ? last : undefined;
    }, { timeoutMs: 60_000, intervalMs: 1_000 });
    await siteA.kubectlOk(['patch', 'rp', PAIR, '--type=merge', '-p', '{"spec":{"role":"secondary"}}']);
    const waiting = await waitFor('A waiting for its pod (DemotionWaiting)', async () => {
      const c = condition(await pairStatus(siteA), 'Ready');
      return c?.reason === 'DemotionWaiting' ? c : undefined;
    }, { timeoutMs: 180_000, intervalMs: 1_000, onTimeout: switchoverDiagnostics });
    expect(waiting.message).toContain('pod(s) default/db');
    expect(await roleStatus(siteA)).toMatchObject({ role: 'primary', appliedRole: 'primary', state: 'InSync' });
    const tStop = Date.now();
    await siteA.kubectlOk(['delete', 'pod', 'db', '--timeout=180s'], { timeoutMs: 200_000 });
    await waitFor('A demoted, its pair gone with the lineage kept', async () => (await roleStatus(siteA))?.appliedRole === 'secondary', { timeoutMs: 600_000, intervalMs: 2_000, onTimeout: switchoverDiagnostics });
    report.push(`A demoted ${((Date.now() - tStop) / 1000).toFixed(1)} s after its pod's deletion was asked`);
    expect(await pairEvents(siteA)).toMatch(/DemotedPairRemoved: .*generation \S+ kept on the PV/);

    // 2. B promoted (its local volume: B's host node cannot splice, so the database is opened
    // there through B's export), dialling the guest through A's node address.
    const tPromote = Date.now();
    await siteB.kubectlOk(['patch', 'rp', PAIR, '--type=merge', '-p', JSON.stringify({ spec: { role: 'primary', remote: { endpoint: `${siteA.node.address}:7401` } } })]);
    const promoted = await waitFor('B promoted, its export serving', async () => {
      const st = await roleStatus(siteB);
      return st?.role === 'primary' && st.appliedRole === 'primary' && st.fenced !== true && (st.exportAddress ?? '') !== '' ? st : undefined;
    }, { timeoutMs: 180_000, intervalMs: 250, onTimeout: switchoverDiagnostics });
    report.push(`B promoted (export serving) ${((Date.now() - tPromote) / 1000).toFixed(1)} s after its patch`);
    const m = await mountExport(cleanup.track.bind(cleanup), `nbd://${promoted.exportAddress}/default.${PAIR}`, join(work, 'b-primary'), VOLUME, { netns: siteB.info.netns });
    expect(await checkDatabase(join(m.dir, 'db.sqlite'))).toEqual({ integrity: 'ok', rows: onA, maxSeq: onA });
    const onB = await commitRows(join(m.dir, 'db.sqlite'), 30);
    expect(onB).toBe(onA + 30);
    await m.unmount();

    // 3. A's fenced secondary, staged by the holder pod, continues the lineage: B ships a delta.
    const toA = await waitFor('A holding B\'s generation, nothing out of sync', async () => {
      const [b, a] = await Promise.all([roleStatus(siteB), roleStatus(siteA)]);
      return b?.state === 'InSync' && b.outOfSyncBytes === 0 && a?.state === 'InSync' && a.generation === b.generation ? b : undefined;
    }, { timeoutMs: 900_000, intervalMs: 3_000, onTimeout: switchoverDiagnostics });
    expect(toA.sidecar?.node).toBe(siteB.node.name);
    expect(await pairEvents(siteA)).toMatch(/Created: .*continuing its volume's data lineage at generation/);
    const shippedToA = (await sidecarPairJson(siteB, chartB, siteB.node.name)).bytesOnWire;
    expect(shippedToA).toBeGreaterThan(0);
    expect(shippedToA).toBeLessThan(FIVE_PERCENT);

    // 4. Back: B demoted (everything shipped), A promoted: its secondary pair goes with the
    // lineage kept for the promotion, then its holder pod and fences; then the application.
    await siteB.kubectlOk(['patch', 'rp', PAIR, '--type=merge', '-p', '{"spec":{"role":"secondary"}}']);
    await waitFor('B demoted', async () => {
      const st = await roleStatus(siteB);
      return st?.role === 'secondary' && st.appliedRole === 'secondary' && condition(st, 'Ready')?.status === 'True';
    }, { timeoutMs: 180_000, intervalMs: 1_000, onTimeout: switchoverDiagnostics });
    const tBack = Date.now();
    await siteA.kubectlOk(['patch', 'rp', PAIR, '--type=merge', '-p', '{"spec":{"role":"primary"}}']);
    await waitFor('A unfenced, its lineage kept for the promotion', async () => {
      const st = await roleStatus(siteA);
      return st !== undefined && st.fence === undefined && (await pairEvents(siteA)).includes('Promoting:');
    }, { timeoutMs: 600_000, intervalMs: 2_000, onTimeout: switchoverDiagnostics });
    const record = JSON.parse(await siteA.kubectlOk(['get', 'pv', pv, '-o', 'jsonpath={.metadata.annotations.blockmirror\\.io/lineage}'])) as { role: string; consistent: boolean; promotion?: string };
    expect(record).toMatchObject({ role: 'secondary', consistent: true, promotion: expect.any(String) as unknown });
    const podOnly = (await renderExample('examples/database/site-a.yaml', { VOLUME_SIZE: `${VOLUME / MiB}Mi`, NODE: vm.node.name, IMAGE: images.sidecar.image, REMOTE_ENDPOINT: remoteEndpoint() }))
      .split(/^---$/m)
      .filter((d) => /^kind: Pod$/m.test(d))
      .join('---');
    await siteA.kubectlOk(['apply', '-f', '-'], { input: podOnly });
    // Every transaction committed on B, found by the database on A when it starts.
    const resumed = await waitFor('the writer on A resuming', async () => {
      const r = await siteA.kubectl(['logs', 'db', '--tail=50']);
      const found = /resuming after (\d+)/.exec(r.stdout);
      return found ? Number(found[1]) : undefined;
    }, { timeoutMs: 600_000, intervalMs: 2_000, onTimeout: switchoverDiagnostics });
    expect(resumed).toBe(onB);
    await commitsPass(onB, 'on A again');
    report.push(`A committing again ${((Date.now() - tBack) / 1000).toFixed(1)} s after its promotion patch (its pod started after the unfence)`);
    const home = await waitFor('A InSync, B holding its generation', async () => {
      const [a, b] = await Promise.all([roleStatus(siteA), roleStatus(siteB)]);
      return a?.role === 'primary' && a.state === 'InSync' && a.outOfSyncBytes === 0 && b?.generation === a.generation ? a : undefined;
    }, { timeoutMs: 900_000, intervalMs: 3_000, onTimeout: switchoverDiagnostics });
    expect(home.sidecar?.node).toBe(vm.node.name);
    expect(await pairEvents(siteA)).toMatch(/Created: .*continuing its volume's data lineage from generation \S+ \(promoted/);
    expect(await pairEvents(siteA)).toMatch(/Attached: every write to \/dev\/mapper\/blockmirror-/);
    const shippedToB = (await sidecarPairJson(siteA, chartA, vm.node.name)).bytesOnWire;
    expect(shippedToB).toBeGreaterThan(0);
    expect(shippedToB).toBeLessThan(FIVE_PERCENT);
    // The database on A opens cleanly and holds every row (the writer goes on meanwhile).
    const dbA = JSON.parse(
      await siteA.kubectlOk(['exec', 'db', '--', 'node', '-e', "const { DatabaseSync } = require('node:sqlite'); const d = new DatabaseSync('/data/db.sqlite', { readOnly: true }); const r = d.prepare('select count(*) as n, max(seq) as m from tx').get(); console.log(JSON.stringify({ integrity: d.prepare('pragma integrity_check').get().integrity_check, rows: r.n, maxSeq: r.m }));"], { timeoutMs: 120_000 }),
    ) as { integrity: string; rows: number; maxSeq: number };
    expect(dbA.integrity).toBe('ok');
    expect(dbA.rows).toBe(dbA.maxSeq);
    expect(dbA.maxSeq).toBeGreaterThan(onB);
    await uncordon();
    report.push(`shipped ${(shippedToA / KiB).toFixed(0)} KiB B→A and ${(shippedToB / KiB).toFixed(0)} KiB A→B (volume ${VOLUME / MiB} MiB; a full copy ships all of it)`);
    process.stdout.write(`CSI switchover:\n${report.map((r) => `  ${r}`).join('\n')}\n`);
  }, 2_700_000);

  it('deleting the pair detaches live: the database keeps committing; nothing of it is left on the node after the pod and claim go', async () => {
    // From the switchover: A the primary again, InSync, the database writing.
    const before = await commitsPass(await lastCommitted(), 'attached again');
    await siteA.kubectlOk(['delete', 'rp', PAIR, '--timeout=120s'], { timeoutMs: 150_000 });
    await commitsPass(before, 'after the pair was deleted');
    const sidecar = await sidecarOnVm();
    const volumes = JSON.parse(await siteA.kubectlOk(['-n', chartA.info.namespace, 'exec', sidecar.name, '-c', 'sidecar', '--', 'node', '/app/dist/sidecar/cli/main.js', 'volume', 'list', '--control', 'unix:///var/lib/blockmirror/control/control.sock'], { timeoutMs: 300_000 })) as { volumes?: { state: string }[] } | { state: string }[];
    expect((Array.isArray(volumes) ? volumes : (volumes.volumes ?? [])).map((v) => v.state)).toEqual(['direct']);
    await siteA.kubectlOk(['delete', 'pod', 'db', '--timeout=180s'], { timeoutMs: 200_000 });
    await siteA.kubectlOk(['delete', 'pvc', 'db', '--timeout=180s'], { timeoutMs: 200_000 });
    const left = await waitFor('no blockmirror device left on the node', async () => {
      const ls = await chartA.kubectlOk(['exec', sidecar.name, '-c', 'sidecar', '--', 'sh', '-c', 'dmsetup ls --target linear; dmsetup ls --target multipath; dmsetup ls --target era; for f in /var/lib/blockmirror/splices/*; do [ -e "$f" ] && echo "blockmirror-record $f"; done; true']);
      return ls.includes('blockmirror-') ? undefined : ls;
    }, { timeoutMs: 180_000, intervalMs: 2_000 });
    expect(left).not.toContain('blockmirror-');
  }, 1_200_000);
});
