import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '../sidecar/control/control-client.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { KubeSite, OperatorProcess, OPERATOR_NAMESPACE, RELEASE, renderExample, type PairObject } from './helpers/kube-site.js';
import { randomFile, sha256File, sparseFile } from './helpers/replication-harness.js';
import { runOk } from './helpers/run-cli.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait-for.js';

// Two sites, each a real control plane (etcd + kube-apiserver) with the Helm chart
// installed, and its own operator and sidecar processes (no kubelet runs the chart's
// pods) authenticated with tokens of the chart's ServiceAccounts: the chart's RBAC must
// be enough for everything below. Users' steps are real kubectl commands against the
// examples; data goes through a real NBD client (nbdcopy) into the primary's export;
// the link between the sidecars runs through a proxy the test can cut.

const MiB = 1024 * 1024;
const VOLUME = 32 * MiB;
const PAIR = 'db-data';
const SIDECAR_PAIR = `default.${PAIR}`;
/** States the primary may show; there is no suspended state to reach. */
const ALLOWED = ['Pending', 'Initializing', 'InSync', 'Resyncing', 'Retrying'];

const cleanup = new CleanupStack();
const track = cleanup.track.bind(cleanup);

interface Site {
  kube: KubeSite;
  /** The operator's credentials: a token of the chart's operator ServiceAccount. */
  operatorKubeconfig: string;
  sidecar: SidecarProcess;
  operator: OperatorProcess;
  volume: string;
  node: string;
}

let work: string;
let a: Site;
let b: Site;
let proxy: FaultProxy;

async function startOperator(kube: KubeSite, kubeconfig: string): Promise<OperatorProcess> {
  const op = await OperatorProcess.start(kube, [], kubeconfig);
  track(`operator of ${kube.name}`, () => op.stop());
  return op;
}

async function startSite(name: string, node: string): Promise<Site> {
  const dir = join(work, name);
  await mkdir(dir, { recursive: true });
  const kube = await KubeSite.start(name, join(dir, 'control-plane'), { install: 'helm' });
  track(`control plane ${name}`, () => kube.stop());
  const operatorKubeconfig = await kube.serviceAccountKubeconfig(`${RELEASE}-operator`);
  const sidecar = await SidecarProcess.start({
    stateDir: join(dir, 'sidecar-state'),
    args: ['--register-node', node, '--register-namespace', OPERATOR_NAMESPACE, '--kubeconfig', await kube.serviceAccountKubeconfig(`${RELEASE}-sidecar`, { node })],
  });
  track(`sidecar ${name}`, async () => void (await sidecar.stop()));
  const operator = await startOperator(kube, operatorKubeconfig);
  return { kube, operatorKubeconfig, sidecar, operator, volume: join(dir, 'volume.img'), node };
}

async function state(site: Site): Promise<PairObject['status']> {
  return (await site.kube.getPair(PAIR))?.status;
}

/** Samples the primary's state until stopped; every sample must be an allowed state. */
function recordStates(site: Site): { stop: () => Promise<string[]> } {
  const seen: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const s = (await state(site).catch(() => undefined))?.state;
      if (s !== undefined && seen[seen.length - 1] !== s) seen.push(s);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return seen;
    },
  };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'bm-two-site-'));
  track(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
  [a, b] = await Promise.all([startSite('site-a', 'node-a'), startSite('site-b', 'node-b')]);
  // Site A's data already exists before the pair does: the initial copy must carry it.
  await randomFile(a.volume, VOLUME);
  await sparseFile(b.volume, VOLUME);
  proxy = await FaultProxy.start({ target: b.sidecar.addresses.peer });
  track('peer proxy', () => proxy.close());
}, 300_000);

afterAll(() => cleanup.releaseAll(), 120_000);

describe('ReplicationPair on two sites with a real API server', () => {
  it('kubectl apply on both sites replicates to InSync; get and describe show it; data reaches B byte-identical', async () => {
    const common = { VOLUME_SIZE: `${VOLUME / MiB}Mi` };
    await b.kube.kubectlOk(['apply', '-f', '-'], { input: await renderExample('examples/two-site/site-b.yaml', { ...common, VOLUME_PATH: b.volume, NODE: b.node }) });
    await a.kube.kubectlOk(['apply', '-f', '-'], {
      input: await renderExample('examples/two-site/site-a.yaml', { ...common, VOLUME_PATH: a.volume, NODE: a.node, REMOTE_ENDPOINT: proxy.address }),
    });

    const rec = recordStates(a);
    await waitFor('site A InSync', async () => (await state(a))?.state === 'InSync', { timeoutMs: 60_000, intervalMs: 250 });
    const statuses = await rec.stop();
    expect(statuses.filter((s) => !ALLOWED.includes(s))).toEqual([]);
    expect(await sha256File(b.volume)).toBe(await sha256File(a.volume));

    const table = await a.kube.kubectlOk(['get', 'rp']);
    expect(table).toMatch(/NAME\s+ROLE\s+MODE\s+STATE\s+OUT-OF-SYNC\s+RPO\s+AGE/);
    expect(table).toMatch(new RegExp(`${PAIR}\\s+primary\\s+sync\\s+InSync\\s+0B\\s+0\\.0s`));
    await waitFor('site B shows its secondary', async () => (await state(b))?.sidecar?.node === 'node-b', { timeoutMs: 30_000 });
    expect(await b.kube.kubectlOk(['get', 'rp'])).toMatch(new RegExp(`${PAIR}\\s+secondary\\s+sync`));

    const describe = await a.kube.kubectlOk(['describe', 'rp', PAIR]);
    // kubectl describe prints each condition's fields alphabetically: Status, then Type.
    expect(describe).toMatch(/Status:\s+True\n\s+Type:\s+Ready/);
    expect(describe).toMatch(/Status:\s+True\n\s+Type:\s+Synchronized/);
    expect(describe).toMatch(/Status:\s+False\n\s+Type:\s+Degraded/);
    expect(describe).toMatch(/Out Of Sync Bytes:\s+0/);
    expect(describe).toMatch(/Normal\s+Created\s+.*pair created on the sidecar of node node-a/);
    expect(describe).toMatch(/Normal\s+InSync\s+.*-> InSync/);
    const status = (await state(a))!;
    expect(status.observedGeneration).toBe(1);
    expect(status.conditions?.every((c) => c.observedGeneration === 1)).toBe(true);

    // New data through the primary's export, with a real NBD client.
    const data = join(work, 'new-data.img');
    await randomFile(data, VOLUME);
    await runOk('nbdcopy', [data, `nbd://${status.exportAddress}/${SIDECAR_PAIR}`], { timeoutMs: 60_000 });
    await waitFor('site A InSync after the write', async () => (await state(a))?.state === 'InSync', { timeoutMs: 30_000 });
    expect(await sha256File(b.volume)).toBe(await sha256File(data));
  }, 180_000);

  it('a cut link shows Retrying with growing out-of-sync bytes, survives an operator restart, and heals to InSync by itself', async () => {
    const status = (await state(a))!;
    const exportUri = `nbd://${status.exportAddress}/${SIDECAR_PAIR}`;
    // A FLUSH first: writes the secondary has but has not made durable would count as
    // out of sync once the link drops (it may lose them), hiding the growth asserted below.
    await runOk('qemu-io', ['-f', 'raw', '-c', 'flush', exportUri], { timeoutMs: 60_000 });
    expect((await state(a))?.outOfSyncBytes).toBe(0);
    const rec = recordStates(a);
    proxy.cut();
    const writes: number[] = [];
    // Writes keep being acknowledged while the peer is away (after the write timeout).
    for (let i = 0; i < 3; i++) {
      await runOk('qemu-io', ['-f', 'raw', '-c', `write -P ${0x11 + i} ${i * 4 * MiB} 2M`, exportUri], { timeoutMs: 60_000 });
      const s = await waitFor(
        'Retrying with the new bytes out of sync',
        async () => {
          const st = await state(a);
          return st?.state === 'Retrying' && (st.outOfSyncBytes ?? 0) >= (i + 1) * 2 * MiB ? st : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      writes.push(s.outOfSyncBytes!);
    }
    expect(writes[2]!).toBeGreaterThan(writes[0]!);
    const describe = await a.kube.kubectlOk(['describe', 'rp', PAIR]);
    expect(describe).toMatch(/Warning\s+Retrying/);
    expect(describe).toMatch(/Status:\s+True\n\s+Type:\s+Degraded/);
    expect(describe).toMatch(/Status:\s+False\n\s+Type:\s+Synchronized/);

    // The operator restarts mid-outage; users see the same resource afterwards.
    await a.operator.kill9();
    a.operator = await startOperator(a.kube, a.operatorKubeconfig);
    await waitFor('status refreshed by the new operator', async () => (await state(a))?.state === 'Retrying', { timeoutMs: 30_000 });

    proxy.heal();
    await waitFor('InSync again without human action', async () => (await state(a))?.state === 'InSync', { timeoutMs: 60_000, intervalMs: 250 });
    const seen = await rec.stop();
    expect(seen).toContain('Retrying');
    expect(seen.filter((s) => !ALLOWED.includes(s))).toEqual([]);
    expect((await state(a))?.outOfSyncBytes).toBe(0);
    expect(await sha256File(b.volume)).toBe(await sha256File(a.volume));
  }, 180_000);

  it('a changed setting is applied in place: the same pair and generation, still replicating', async () => {
    await a.kube.kubectlOk(['patch', 'rp', PAIR, '--type=merge', '-p', '{"spec":{"sync":{"writeTimeoutMs":800}}}']);
    await waitFor('the Updated event', async () => /Normal\s+Updated\s+.*pair settings updated/.test(await a.kube.kubectlOk(['describe', 'rp', PAIR])), { timeoutMs: 30_000 });
    const control = new ControlClient(a.sidecar.addresses.control);
    try {
      const live = await control.getPair(SIDECAR_PAIR);
      expect(live.spec?.writeTimeoutMs).toBe(800);
      // What cannot change on a live pair is refused by the sidecar itself.
      await expect(control.updatePair({ ...live.spec!, mode: 'MODE_ASYNC' })).rejects.toMatchObject({ grpcCode: 9, message: expect.stringContaining('mode cannot change on a live pair') as unknown as string });
    } finally {
      control.close();
    }
    await waitFor('InSync for generation 2', async () => {
      const s = await state(a);
      return s?.state === 'InSync' && s.observedGeneration === 2;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    const exportUri = `nbd://${(await state(a))!.exportAddress}/${SIDECAR_PAIR}`;
    await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x77 8M 1M', '-c', 'flush', exportUri], { timeoutMs: 60_000 });
    await waitFor('InSync after the write', async () => (await state(a))?.state === 'InSync', { timeoutMs: 30_000 });
    expect(await sha256File(b.volume)).toBe(await sha256File(a.volume));
    // The secondary kept accepting the restarted primary: no new generation, no full copy.
    expect(b.sidecar.log.filter((l) => l.includes('generation mismatch'))).toEqual([]);
  }, 90_000);

  it('the API server refuses invalid resources with a clear message', async () => {
    const apply = (doc: string): ReturnType<KubeSite['kubectl']> => a.kube.kubectl(['apply', '-f', '-'], { input: doc });
    const rp = (name: string, spec: string): string => `apiVersion: blockmirror.io/v1alpha1\nkind: ReplicationPair\nmetadata: { name: ${name}, namespace: default }\nspec:\n${spec}`;

    const noRemote = await apply(rp('no-remote', '  pvcName: db-data\n  role: primary\n  mode: sync\n'));
    expect(noRemote.code).not.toBe(0);
    expect(noRemote.stderr).toContain('a primary needs spec.remote');

    const badMode = await apply(rp('bad-mode', '  pvcName: db-data\n  role: secondary\n  mode: semi-sync\n'));
    expect(badMode.code).not.toBe(0);
    expect(badMode.stderr).toMatch(/spec\.mode: Unsupported value: "semi-sync"/);

    const badBlock = await apply(rp('bad-block', '  pvcName: db-data\n  role: secondary\n  mode: sync\n  blockSize: 5000\n'));
    expect(badBlock.code).not.toBe(0);
    expect(badBlock.stderr).toMatch(/spec\.blockSize: Unsupported value: 5000/);

    // A remote identity that is no peer identity would pin a secondary to an operator's certificate.
    const badIdentity = await apply(rp('bad-identity', '  pvcName: db-data\n  role: secondary\n  mode: sync\n  remote: { endpoint: "a:7401", identity: "spiffe://blockmirror/site-a/operator" }\n'));
    expect(badIdentity.code).not.toBe(0);
    expect(badIdentity.stderr).toMatch(/spec\.remote\.identity in body should match/);

    const changedPvc = await a.kube.kubectl(['patch', 'rp', PAIR, '--type=merge', '-p', '{"spec":{"pvcName":"other-claim"}}']);
    expect(changedPvc.code).not.toBe(0);
    expect(changedPvc.stderr).toContain('spec.pvcName cannot change after creation');
    expect((await a.kube.getPair(PAIR))?.spec.pvcName).toBe('db-data');
  }, 60_000);

  it('kubectl delete removes the pair from the sidecar (finalizer) and keeps the volume data', async () => {
    const before = await sha256File(a.volume);
    expect(JSON.parse(await a.sidecar.cli('pair', 'list', '-o', 'json'))).toEqual(expect.arrayContaining([expect.objectContaining({ name: SIDECAR_PAIR })]));
    expect((await a.kube.getPair(PAIR))?.metadata.finalizers).toContain('blockmirror.io/sidecar-pair');
    await a.kube.kubectlOk(['delete', 'rp', PAIR, '--timeout=60s']);
    expect(await a.kube.getPair(PAIR)).toBeUndefined();
    const left = JSON.parse(await a.sidecar.cli('pair', 'list', '-o', 'json')) as { name: string }[];
    expect(left.map((p) => p.name)).not.toContain(SIDECAR_PAIR);
    expect(await sha256File(a.volume)).toBe(before);
  }, 90_000);
  it('a primary on a CSI volume its pod writes around the tap never reports InSync, and says why and what to do', async () => {
    // A CSI volume of a class that does not opt in, and a pod scheduled with its claim (no
    // kubelet runs it here; the operator sees a writer, as on a real node).
    const objects = [
      {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: 'csi-plain' },
        spec: {
          capacity: { storage: '32Mi' },
          accessModes: ['ReadWriteOnce'],
          volumeMode: 'Filesystem',
          csi: { driver: 'lab.csi.blockmirror.io', volumeHandle: 'vol-plain' },
          claimRef: { namespace: 'default', name: 'csi-claim' },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'csi-claim', namespace: 'default' },
        spec: { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', volumeName: 'csi-plain', storageClassName: '', resources: { requests: { storage: '32Mi' } } },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'writer', namespace: 'default' },
        spec: {
          nodeName: a.node,
          containers: [{ name: 'db', image: 'blockmirror/none:never-pulled', volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'csi-claim' } }],
        },
      },
      {
        apiVersion: 'blockmirror.io/v1alpha1',
        kind: 'ReplicationPair',
        metadata: { name: 'csi-pair', namespace: 'default' },
        spec: { pvcName: 'csi-claim', role: 'primary', mode: 'sync', remote: { endpoint: proxy.address } },
      },
    ];
    await a.kube.kubectlOk(['apply', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n') });
    const ready = async (): Promise<{ reason: string; message: string } | undefined> => (await a.kube.getPair('csi-pair'))?.status?.conditions?.find((c) => c.type === 'Ready');
    await waitFor('csi-pair Ready=False NotSpliced', async () => (await ready())?.reason === 'NotSpliced', { timeoutMs: 30_000, intervalMs: 250 });
    expect((await ready())?.message).toMatch(/volume csi-plain \(driver lab\.csi\.blockmirror\.io\) is not behind blockmirror's tap on node node-a, so it is not replicated: it does not opt in/);
    // Several reconcile passes (every 500 ms here): never InSync, never a pair on the sidecar.
    const seen = new Set<string>();
    const until = Date.now() + 3_000;
    while (Date.now() < until) {
      const st = await a.kube.getPair('csi-pair');
      seen.add(st?.status?.state ?? 'none');
      expect(st?.status?.conditions?.find((c) => c.type === 'Synchronized')?.status).toBe('False');
      await new Promise((r) => setTimeout(r, 250));
    }
    expect([...seen]).toEqual(['Pending']);
    const left = JSON.parse(await a.sidecar.cli('pair', 'list', '-o', 'json')) as { name: string }[];
    expect(left.map((p) => p.name)).not.toContain('default.csi-pair');
    const events = await a.kube.kubectlOk(['get', 'events', '--field-selector', 'involvedObject.name=csi-pair', '-o', 'jsonpath={range .items[*]}{.type} {.reason}{"\\n"}{end}']);
    expect(events.split('\n')).toContain('Warning NotSpliced');
    // ROLE is the role a sidecar holds: none, as no sidecar has the pair.
    expect(await a.kube.kubectlOk(['get', 'rp', 'csi-pair'])).toMatch(/csi-pair\s+(<none>\s+)?sync\s+Pending/);
    await a.kube.kubectlOk(['delete', 'rp', 'csi-pair', '--timeout=60s']);
  }, 90_000);
});
