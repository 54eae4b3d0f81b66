// The lab CSI driver on a real site, deployed the way real CSI drivers are
// (hack/site-csi.sh): its node plugin registered with the kubelet through the kubelet's
// plugin registration socket, external-provisioner (v6.4.0, built from its module) turning
// claims of the `lab-csi` StorageClass into CreateVolume calls, and the kubelet staging and
// publishing the volumes for a pod: a Filesystem and a Block claim.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { lstat, mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { ClusterSite, testImages, type LocalImage } from './helpers/cluster-site.js';
import { run, runOk } from './helpers/run-cli.js';
import { SiteCsi } from './helpers/site-csi.js';
import { waitFor } from './helpers/wait-for.js';

const DRIVER = 'lab.csi.blockmirror.io';
const MiB = 1 << 20;
/** Where the pod writes its marker on the block volume. */
const BLOCK_OFFSET = 1 * MiB;

interface PersistentVolume {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { volumeMode: string; capacity: { storage: string }; csi: { driver: string; volumeHandle: string; fsType?: string }; claimRef: { name: string } };
}

function claim(name: string, size: string, volumeMode: 'Filesystem' | 'Block'): object {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name },
    spec: { storageClassName: 'lab-csi', volumeMode, accessModes: ['ReadWriteOnce'], resources: { requests: { storage: size } } },
  };
}

/** Loop devices whose backing file is under `dir`. */
async function loopsUnder(dir: string): Promise<string[]> {
  const out = await runOk('losetup', ['--list', '--noheadings', '--raw', '--output', 'NAME,BACK-FILE']);
  return out.split('\n').filter((l) => (l.split(' ')[1] ?? '').startsWith(`${dir}/`));
}

async function mountsUnder(dir: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(`${dir}/`));
}

async function readAt(file: string, offset: number, length: number): Promise<string> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, offset);
    return buf.toString('utf8');
  } finally {
    await fh.close();
  }
}

describe('the lab CSI driver on a real node: kubelet registration, external-provisioner, a pod', () => {
  const cleanup = new CleanupStack();
  const marker = `written-by-the-pod-${randomBytes(6).toString('hex')}`;
  let work: string;
  let busybox: LocalImage;
  let site: ClusterSite;
  let csi: SiteCsi;
  let kubeletRoot: string;
  let stopCsi: () => Promise<void>;
  const pvs = new Map<string, PersistentVolume>();
  let podUid: string;

  beforeAll(async () => {
    busybox = (await testImages()).busybox;
    work = await mkdtemp(join(tmpdir(), 'bm-csi-site-'));
    cleanup.track('work dir', () => rm(work, { recursive: true, force: true }));
    const dir = join(work, 'site');
    cleanup.track('site', () => ClusterSite.down(dir));
    const started = Date.now();
    site = await ClusterSite.start('csi', dir, { images: [busybox] });
    const siteSeconds = (Date.now() - started) / 1000;
    stopCsi = cleanup.track('lab CSI driver', () => SiteCsi.down(dir));
    csi = await SiteCsi.up(site);
    process.stdout.write(`site up in ${siteSeconds.toFixed(1)} s, lab CSI driver deployed in ${((Date.now() - started) / 1000 - siteSeconds).toFixed(1)} s:\n${csi.upLog}`);
    kubeletRoot = site.node.kubeletRootDir;
  }, 300_000);

  afterAll(() => cleanup.releaseAll(), 180_000);

  it("registers its node plugin through the kubelet's plugin registration socket: the kubelet's CSINode lists it", async () => {
    expect(csi.info.registrationSocket).toBe(join(kubeletRoot, 'plugins_registry', `${DRIVER}-reg.sock`));
    expect((await lstat(csi.info.registrationSocket)).isSocket()).toBe(true);
    const csinode = JSON.parse(await site.kubectlOk(['get', 'csinode', site.node.name, '-o', 'json'])) as { spec: { drivers: { name: string; nodeID: string }[] } };
    expect(csinode.spec.drivers).toEqual([expect.objectContaining({ name: DRIVER, nodeID: site.node.name })]);
    // The kubelet's side: it validated and registered the driver at the endpoint GetInfo gave.
    const kubeletLog = await readFile(join(site.info.dir, 'kubelet.log'), 'utf8');
    expect(kubeletLog).toContain(`Register new plugin with name: ${DRIVER} at endpoint: ${csi.info.socket}`);
    // The driver's side: the kubelet's NotifyRegistrationStatus said yes.
    expect(await csi.logged('registered with the kubelet', { driverName: DRIVER })).toHaveLength(1);
    expect(await csi.logged('the kubelet refused the registration')).toEqual([]);
    const driver = JSON.parse(await site.kubectlOk(['get', 'csidriver', DRIVER, '-o', 'json'])) as { spec: { attachRequired: boolean } };
    expect(driver.spec.attachRequired).toBe(false);
  });

  it('external-provisioner provisions a Filesystem and a Block claim of the StorageClass: bound PVs, lab volumes on disk', async () => {
    await site.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [claim('data', '64Mi', 'Filesystem'), claim('raw', '16Mi', 'Block')] }) });
    for (const name of ['data', 'raw']) {
      const pvName = await waitFor(
        `claim ${name} Bound`,
        async () => {
          const c = JSON.parse(await site.kubectlOk(['get', 'pvc', name, '-o', 'json'])) as { status: { phase?: string }; spec: { volumeName?: string } };
          return c.status.phase === 'Bound' ? c.spec.volumeName : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      pvs.set(name, JSON.parse(await site.kubectlOk(['get', 'pv', pvName!, '-o', 'json'])) as PersistentVolume);
    }
    const data = pvs.get('data')!;
    const raw = pvs.get('raw')!;
    expect(data.spec).toMatchObject({ volumeMode: 'Filesystem', csi: { driver: DRIVER, volumeHandle: data.metadata.name, fsType: 'ext4' }, claimRef: { name: 'data' } });
    expect(raw.spec).toMatchObject({ volumeMode: 'Block', csi: { driver: DRIVER, volumeHandle: raw.metadata.name }, claimRef: { name: 'raw' } });
    for (const pv of [data, raw]) {
      expect(pv.metadata.annotations?.['pv.kubernetes.io/provisioned-by']).toBe(DRIVER);
      expect(await csi.logged('lab volume created', { id: pv.spec.csi.volumeHandle })).toHaveLength(1);
    }
    expect((await stat(csi.imagePath(data.spec.csi.volumeHandle))).size).toBe(64 * MiB);
    expect((await stat(csi.imagePath(raw.spec.csi.volumeHandle))).size).toBe(16 * MiB);
    // attachRequired: false: nothing to attach, no VolumeAttachment.
    expect((await site.kubectlOk(['get', 'volumeattachments', '-o', 'name'])).trim()).toBe('');
  });

  it("a pod mounts one and maps the other; its writes land in the driver's image files; the kubelet's NodeStage/NodePublish reached the driver", async () => {
    const script = [
      `echo ${marker} >/data/hello`,
      'sync',
      `printf ${marker} | dd of=/dev/xvda bs=4096 seek=${BLOCK_OFFSET / 4096} conv=fsync 2>/dev/null`,
      'echo written',
      'exec sleep 3600',
    ].join(' && ');
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'writer' },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: 'main',
            image: busybox.image,
            imagePullPolicy: 'Never',
            command: ['sh', '-c', script],
            volumeMounts: [{ name: 'data', mountPath: '/data' }],
            volumeDevices: [{ name: 'raw', devicePath: '/dev/xvda' }],
          },
        ],
        volumes: [
          { name: 'data', persistentVolumeClaim: { claimName: 'data' } },
          { name: 'raw', persistentVolumeClaim: { claimName: 'raw' } },
        ],
      },
    };
    await site.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(pod) });
    await waitFor('the pod to write', async () => (await site.kubectl(['logs', 'writer'])).stdout.includes('written'), { timeoutMs: 90_000, intervalMs: 250 });
    podUid = (await site.kubectlOk(['get', 'pod', 'writer', '-o', 'jsonpath={.metadata.uid}'])).trim();

    // In the pod: an ext4 filesystem at /data holding the file.
    expect((await site.kubectlOk(['exec', 'writer', '--', 'cat', '/data/hello'])).trim()).toBe(marker);
    expect(await site.kubectlOk(['exec', 'writer', '--', 'grep', ' /data ', '/proc/mounts'])).toMatch(/ \/data ext4 rw/);

    // The block volume's bytes are the image file's bytes.
    const data = pvs.get('data')!.spec.csi.volumeHandle;
    const raw = pvs.get('raw')!.spec.csi.volumeHandle;
    expect(await readAt(csi.imagePath(raw), BLOCK_OFFSET, marker.length)).toBe(marker);

    // The kubelet called the driver at its own paths, through the registered endpoint.
    const csiDir = join(kubeletRoot, 'plugins', 'kubernetes.io', 'csi');
    const [stagedFs] = await csi.logged('lab volume staged', { id: data });
    expect(stagedFs).toMatchObject({ type: 'mount', staging: expect.stringMatching(new RegExp(`^${csiDir}/${DRIVER}/[0-9a-f]{64}/globalmount$`)) });
    expect(await csi.logged('lab volume published', { id: data })).toEqual([
      expect.objectContaining({ type: 'mount', target: join(kubeletRoot, 'pods', podUid, 'volumes', 'kubernetes.io~csi', pvs.get('data')!.metadata.name, 'mount') }),
    ]);
    expect(await csi.logged('lab volume staged', { id: raw })).toEqual([expect.objectContaining({ type: 'block', staging: join(csiDir, 'volumeDevices', 'staging', raw) })]);
    expect(await csi.logged('lab volume published', { id: raw })).toEqual([expect.objectContaining({ type: 'block', target: join(csiDir, 'volumeDevices', 'publish', raw, podUid) })]);
    expect(await loopsUnder(csi.info.dataDir)).toHaveLength(2);
  });

  it('deleting the pod unpublishes and unstages both; the file is in the ext4 image; deleting the claims deletes the volumes, leaving nothing', async () => {
    const data = pvs.get('data')!.spec.csi.volumeHandle;
    const raw = pvs.get('raw')!.spec.csi.volumeHandle;
    await site.kubectlOk(['delete', 'pod', 'writer', '--wait=true'], { timeoutMs: 90_000 });
    await waitFor('both volumes unstaged', async () => (await csi.logged('lab volume unstaged')).length === 2, { timeoutMs: 60_000, intervalMs: 250 });
    for (const id of [data, raw]) expect(await csi.logged('lab volume unpublished', { id })).toHaveLength(1);
    expect(await loopsUnder(site.info.dir)).toEqual([]);
    // Unmounted, the image is a clean ext4 filesystem with the pod's file in it.
    const image = csi.imagePath(data);
    const fsck = await run('e2fsck', ['-fn', image]);
    expect({ code: fsck.code, out: fsck.stdout + fsck.stderr }).toEqual({ code: 0, out: fsck.stdout + fsck.stderr });
    expect((await runOk('debugfs', ['-R', 'cat /hello', image])).trim()).toBe(marker);

    await site.kubectlOk(['delete', 'pvc', 'data', 'raw', '--wait=true'], { timeoutMs: 60_000 });
    // reclaimPolicy Delete: external-provisioner calls DeleteVolume, then removes the PV.
    await waitFor('the PVs deleted', async () => (await site.kubectlOk(['get', 'pv', '-o', 'name'])).trim() === '', { timeoutMs: 60_000, intervalMs: 250 });
    for (const id of [data, raw]) expect(await csi.logged('lab volume deleted', { id })).toHaveLength(1);
    expect(await readdir(join(csi.info.dataDir, 'volumes'))).toEqual([]);
    expect(await loopsUnder(site.info.dir)).toEqual([]);
    expect((await mountsUnder(join(kubeletRoot, 'plugins'))).concat(await mountsUnder(join(kubeletRoot, 'pods', podUid)))).toEqual([]);
  });

  it('stopping the driver removes its registration socket and the kubelet drops it from CSINode', async () => {
    await stopCsi();
    await expect(lstat(csi.info.registrationSocket)).rejects.toMatchObject({ code: 'ENOENT' });
    await waitFor(
      'CSINode without the driver',
      async () => {
        const csinode = JSON.parse(await site.kubectlOk(['get', 'csinode', site.node.name, '-o', 'json'])) as { spec: { drivers: { name: string }[] | null } };
        return !(csinode.spec.drivers ?? []).some((d) => d.name === DRIVER);
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(await readFile(join(site.info.dir, 'kubelet.log'), 'utf8')).toContain(`DeRegisterPlugin request for plugin ${DRIVER}`);
  });
});
