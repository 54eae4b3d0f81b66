// The CSI node proxy between a kubelet-like caller and the real lab driver (a separate
// process on loop devices). The device-mapper layer is a recording fake here (this host
// has no device-mapper; the VM test uses the real splice): it hands back the driver's own
// device, so what is checked is the proxy's logic — an opted-in volume goes through the
// splicer on the driver's raw device and the kubelet's paths lead to what the splicer
// returned; a volume that does not opt in never reaches it. The node's fences are an
// in-memory fake of the sidecar's: a fenced volume is staged as the raw device only and
// never published for writing (real mounts and loop devices show what a pod would get).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FailedPreconditionError } from '../sidecar/errors.js';
import { loadCsiProto, type CsiProto } from '../sidecar/grpc/load-proto.js';
import { createLogger } from '../sidecar/log/create-logger.js';
import { csiCall, type CsiCallResult } from '../sidecar/csi/csi-call.js';
import { mountsAt } from '../sidecar/csi/mount-table.js';
import { NodeProxy } from '../sidecar/csi/node-proxy.js';
import type { NodeSplicer } from '../sidecar/csi/node-splicer.js';
import type { NodeFences, VolumeFence } from '../sidecar/csi/node-fences.js';
import { FenceUnknownError } from '../sidecar/csi/control-fences.js';
import type { FenceHold } from '../sidecar/fence/fence-store.js';
import { pvNameForVolume } from '../sidecar/csi/pv-name.js';
import { resolveBlockDevice } from '../sidecar/csi/block-device.js';
import { REPLICATE_KEY } from '../sidecar/csi/replication-opt-in.js';
import { resolveCsiProtoDir } from '../sidecar/csi/resolve-csi-proto-dir.js';
import { CsiProcess, releaseHostResources } from './helpers/csi-process.js';
import { runCli, runOk } from './helpers/run-cli.js';

/** Stands in for the volume splice: returns the device it is given, and records every call. */
class RecordingSplicer implements NodeSplicer {
  readonly calls: string[] = [];
  /** The paths the proxy named, before resolving (the sidecar checks these against its allowed paths). */
  readonly given: string[] = [];
  refuseUnstage = false;

  async stage(pv: string, device: string): Promise<{ dmDevice: string }> {
    // As the sidecar does: the kernel's device behind the path the proxy names.
    this.given.push(device);
    const dev = await resolveBlockDevice(device);
    this.calls.push(`stage ${pv} ${dev}`);
    return { dmDevice: dev };
  }

  async unstage(pv: string): Promise<void> {
    this.calls.push(`unstage ${pv}`);
    if (this.refuseUnstage) throw new FailedPreconditionError(`replication is attached to ${pv}`);
  }
}

/** Stands in for the sidecar's fence store: fences by pv, and every report the proxy made. */
class FakeFences implements NodeFences {
  readonly fences = new Map<string, VolumeFence>();
  readonly reports: string[] = [];
  unreachable = false;

  fence(pv: string, pair: string, volume = pv): void {
    this.fences.set(pv, { pv, pair, volume });
  }

  async fenceOf(pv: string): Promise<VolumeFence | undefined> {
    if (this.unreachable) throw new FenceUnknownError(pv, new Error('connect ENOENT control.sock'));
    return this.fences.get(pv);
  }

  async report(pv: string, hold: FenceHold, device = ''): Promise<boolean> {
    if (!this.fences.has(pv)) return false;
    // As the sidecar keeps it: the kernel's device behind the path the proxy names.
    const dev = device !== '' ? await resolveBlockDevice(device) : '';
    this.reports.push(`${pv} ${hold || 'none'}${dev !== '' ? ` ${dev}` : ''}`);
    return true;
  }
}

const fsCap = { mount: { fsType: 'ext4' }, accessMode: { mode: 'SINGLE_NODE_WRITER' } };
const blockCap = { block: {}, accessMode: { mode: 'SINGLE_NODE_WRITER' } };

describe('CSI node proxy in front of the lab driver', () => {
  let dir: string;
  let csi: CsiProto;
  let driver: CsiProcess | undefined;
  let proxy: NodeProxy | undefined;
  let splicer: RecordingSplicer;
  const fences = new FakeFences();
  const logger = createLogger({ level: 'error' });

  const startProxy = async (): Promise<void> => {
    splicer = new RecordingSplicer();
    proxy = await NodeProxy.start({ csi, endpoint: `unix://${dir}/proxy.sock`, driver: `unix://${dir}/lab.sock`, stateDir: join(dir, 'proxy'), splicer, fences, logger });
  };
  const call = (socket: 'proxy' | 'lab', method: string, request: object): Promise<CsiCallResult> => csiCall(csi.definition, `unix://${dir}/${socket}.sock`, method, request);
  const ok = async <T = Record<string, unknown>>(socket: 'proxy' | 'lab', method: string, request: object): Promise<T> => {
    const r = await call(socket, method, request);
    if (!r.ok) throw new Error(`${method} via ${socket}: ${r.code}: ${r.details}`);
    return r.response as T;
  };
  const createVolume = async (name: string, parameters: Record<string, string>, cap: object): Promise<{ volumeId: string; volumeContext: Record<string, string> }> =>
    (await ok<{ volume: { volumeId: string; volumeContext: Record<string, string> } }>('lab', 'CreateVolume', { name, capacityRange: { requiredBytes: 32 << 20 }, volumeCapabilities: [cap], parameters })).volume;
  const loopOf = async (volumeId: string): Promise<string> => (await runOk('losetup', ['--noheadings', '--output', 'NAME', '--associated', join(dir, 'lab', 'volumes', `${volumeId}.img`)])).trim();
  const kubeletPaths = async (name: string): Promise<{ staging: string; target: string }> => {
    const staging = join(dir, 'kubelet', 'plugins', name, 'globalmount');
    await mkdir(staging, { recursive: true });
    await mkdir(join(dir, 'kubelet', 'pods', name), { recursive: true });
    return { staging, target: join(dir, 'kubelet', 'pods', name, 'volume') };
  };
  const records = (): Promise<string[]> => readdir(join(dir, 'proxy', 'volumes')).catch(() => []);

  beforeAll(async () => {
    csi = loadCsiProto(await resolveCsiProtoDir());
    dir = await mkdtemp(join(tmpdir(), 'bm-csi-proxy-'));
    driver = await CsiProcess.start(['csi-lab-driver', '--endpoint', `unix://${dir}/lab.sock`, '--data-dir', join(dir, 'lab'), '--node-id', 'node-1'], 'lab CSI driver ready');
    await startProxy();
  });

  beforeEach(() => {
    splicer.calls.length = 0;
    splicer.refuseUnstage = false;
    fences.fences.clear();
    fences.reports.length = 0;
    fences.unreachable = false;
  });

  afterAll(async () => {
    await proxy?.stop();
    await driver?.stop();
    if (dir !== undefined) {
      // A failed test may leave mounts and loop devices: take them down before removing the folder.
      await releaseHostResources(dir);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stages an opted-in filesystem volume on the spliced device over the driver\'s raw device, and undoes it after a restart', async () => {
    const vol = await createVolume('pvc-optin-fs', { [REPLICATE_KEY]: 'true' }, fsCap);
    // The StorageClass parameter reached the volume context: that is what the node sees.
    expect(vol.volumeContext).toEqual({ [REPLICATE_KEY]: 'true' });
    const { staging, target } = await kubeletPaths('optin-fs');
    const stageReq = { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: fsCap, volumeContext: vol.volumeContext };
    await ok('proxy', 'NodeStageVolume', stageReq);

    const loop = await loopOf(vol.volumeId);
    expect(loop).toMatch(/^\/dev\/loop\d+$/);
    expect(splicer.calls).toEqual([`stage pvc-optin-fs ${loop}`]);
    // The driver was asked for a raw device at the proxy's private path, no filesystem of its own ...
    const privateTarget = join(dir, 'proxy', 'devices', 'pvc-optin-fs');
    expect((await stat(privateTarget)).isBlockDevice()).toBe(true);
    // ... which is what the sidecar is named (it stages only devices under its allowed paths).
    expect(splicer.given).toEqual([privateTarget]);
    expect(await mountsAt(join(dir, 'proxy', 'staging', 'pvc-optin-fs'))).toEqual([]);
    // ... and the kubelet's staging path holds ext4 on what the splicer returned.
    expect((await mountsAt(staging)).map((m) => [m.source, m.fsType])).toEqual([[loop, 'ext4']]);
    expect(await records()).toEqual(['pvc-optin-fs.json']);

    // A retried stage changes nothing.
    await ok('proxy', 'NodeStageVolume', stageReq);
    expect((await mountsAt(staging)).length).toBe(1);

    await ok('proxy', 'NodePublishVolume', { volumeId: vol.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: fsCap, volumeContext: vol.volumeContext });
    await writeFile(join(target, 'hello'), 'through the splice');
    expect(await readFile(join(staging, 'hello'), 'utf8')).toBe('through the splice');
    await ok('proxy', 'NodeUnpublishVolume', { volumeId: vol.volumeId, targetPath: target });
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });

    // While replication is attached the splicer refuses: the call fails with its code and nothing is undone.
    splicer.refuseUnstage = true;
    expect(await call('proxy', 'NodeUnstageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging })).toMatchObject({ ok: false, code: 'FAILED_PRECONDITION' });
    expect(await loopOf(vol.volumeId)).toBe(loop);
    expect(await records()).toEqual(['pvc-optin-fs.json']);

    // A restarted proxy still knows the volume went through the splice (its record).
    await proxy!.stop();
    await startProxy();
    await ok('proxy', 'NodeUnstageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging });
    expect(splicer.calls).toEqual(['unstage pvc-optin-fs']);
    expect(await mountsAt(staging)).toEqual([]);
    expect(await loopOf(vol.volumeId)).toBe('');
    expect(await records()).toEqual([]);
    await expect(stat(privateTarget)).rejects.toMatchObject({ code: 'ENOENT' });
    // Unstage again (a retry): the volume is no longer the proxy's, the driver answers.
    await ok('proxy', 'NodeUnstageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging });
    expect(splicer.calls).toEqual(['unstage pvc-optin-fs']);

    // The data stayed on the volume: stage it again, not opted in this time.
    await ok('proxy', 'NodeStageVolume', { ...stageReq, volumeContext: {} });
    expect(await readFile(join(staging, 'hello'), 'utf8')).toBe('through the splice');
    await ok('proxy', 'NodeUnstageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging });
    await ok('lab', 'DeleteVolume', { volumeId: vol.volumeId });
  });

  it('publishes an opted-in block volume as the spliced device node, under a hashed name when the id is not a valid one', async () => {
    const vol = await createVolume('Block-Vol_1', { [REPLICATE_KEY]: 'true' }, blockCap);
    const pv = pvNameForVolume(vol.volumeId);
    expect(pv).toMatch(/^v-[0-9a-f]{20}$/);
    const { staging, target } = await kubeletPaths('optin-block');
    await ok('proxy', 'NodeStageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: blockCap, volumeContext: vol.volumeContext });
    const loop = await loopOf(vol.volumeId);
    expect(splicer.calls).toEqual([`stage ${pv} ${loop}`]);
    // Block: nothing is mounted at the kubelet's staging path.
    expect(await mountsAt(staging)).toEqual([]);

    await ok('proxy', 'NodePublishVolume', { volumeId: vol.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: blockCap, volumeContext: vol.volumeContext });
    const [t, l] = await Promise.all([stat(target), stat(loop)]);
    expect(t.isBlockDevice()).toBe(true);
    expect(t.rdev).toBe(l.rdev);
    // Published twice (a retry): still one bind mount.
    await ok('proxy', 'NodePublishVolume', { volumeId: vol.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: blockCap, volumeContext: vol.volumeContext });
    expect((await mountsAt(target)).length).toBe(1);

    await ok('proxy', 'NodeUnpublishVolume', { volumeId: vol.volumeId, targetPath: target });
    await ok('proxy', 'NodeUnstageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging });
    expect(splicer.calls).toEqual([`stage ${pv} ${loop}`, `unstage ${pv}`]);
    expect(await loopOf(vol.volumeId)).toBe('');
    expect(await records()).toEqual([]);
    await ok('lab', 'DeleteVolume', { volumeId: vol.volumeId });
  });

  it('forwards a volume that does not opt in to the driver untouched, never to the splicer', async () => {
    const vol = await createVolume('pvc-plain', { [REPLICATE_KEY]: 'false' }, fsCap);
    const { staging, target } = await kubeletPaths('plain');
    await ok('proxy', 'NodeStageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: fsCap, volumeContext: vol.volumeContext });
    const loop = await loopOf(vol.volumeId);
    // The driver itself mounted its device at the kubelet's path.
    expect((await mountsAt(staging)).map((m) => [m.source, m.fsType])).toEqual([[loop, 'ext4']]);
    await ok('proxy', 'NodePublishVolume', { volumeId: vol.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: fsCap, volumeContext: vol.volumeContext });
    expect((await mountsAt(target)).length).toBe(1);
    await ok('proxy', 'NodeUnpublishVolume', { volumeId: vol.volumeId, targetPath: target });
    await ok('proxy', 'NodeUnstageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging });
    expect(splicer.calls).toEqual([]);
    expect(await records()).toEqual([]);
    expect(await loopOf(vol.volumeId)).toBe('');
    await ok('lab', 'DeleteVolume', { volumeId: vol.volumeId });
  });

  it('a fenced volume (opted in or not) is staged as its raw device only, held and reported; refused for writing with the reason; a read-only publish is an empty read-only tmpfs', async () => {
    for (const [name, params] of [
      ['pvc-fenced-optin', { [REPLICATE_KEY]: 'true' }],
      ['pvc-fenced-plain', {}],
    ] as const) {
      const vol = await createVolume(name, params, fsCap);
      fences.fence(name, 'apps/db', `pv-of-${name}`);
      const { staging, target } = await kubeletPaths(name);
      const stageReq = { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: fsCap, volumeContext: vol.volumeContext };
      await ok('proxy', 'NodeStageVolume', stageReq);
      const loop = await loopOf(vol.volumeId);
      expect(loop).toMatch(/^\/dev\/loop\d+$/);
      // The raw device at the proxy's private path; no splice, nothing mounted anywhere.
      expect((await stat(join(dir, 'proxy', 'devices', name))).isBlockDevice()).toBe(true);
      expect(splicer.calls).toEqual([]);
      expect(await mountsAt(staging)).toEqual([]);
      expect(await runOk('findmnt', ['--noheadings', '--output', 'TARGET', '--source', loop]).catch(() => '')).toBe('');
      expect(fences.reports).toEqual([`${name} held ${loop}`]);
      // A retried stage changes nothing (and says the same again).
      await ok('proxy', 'NodeStageVolume', stageReq);
      expect(await loopOf(vol.volumeId)).toBe(loop);
      expect(fences.reports).toEqual([`${name} held ${loop}`, `${name} held ${loop}`]);
      fences.reports.length = 0;

      // For writing: refused with what a user needs to know (the kubelet puts it in the pod's events).
      const publishReq = { volumeId: vol.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: fsCap, volumeContext: vol.volumeContext };
      expect(await call('proxy', 'NodePublishVolume', { ...publishReq, readonly: false })).toEqual({
        ok: false,
        code: 'FAILED_PRECONDITION',
        details: `volume pv-of-${name} is the secondary of replication pair apps/db: blocks are written under it, so it cannot be published for writing until it is promoted`,
      });
      await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
      // Read-only: an empty read-only tmpfs, never the volume's filesystem.
      await ok('proxy', 'NodePublishVolume', { ...publishReq, readonly: true });
      expect((await mountsAt(target)).map((m) => m.fsType)).toEqual(['tmpfs']);
      expect(await readdir(target)).toEqual([]);
      await expect(writeFile(join(target, 'x'), 'no')).rejects.toMatchObject({ code: 'EROFS' });
      await ok('proxy', 'NodePublishVolume', { ...publishReq, readonly: true });
      expect((await mountsAt(target)).length).toBe(1);
      await ok('proxy', 'NodeUnpublishVolume', { volumeId: vol.volumeId, targetPath: target });
      await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });

      // Unstage gives the device back to the driver and says so.
      await ok('proxy', 'NodeUnstageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging });
      expect(await loopOf(vol.volumeId)).toBe('');
      expect(await records()).toEqual([]);
      expect(fences.reports).toEqual([`${name} none`]);
      expect(splicer.calls).toEqual([]);
      fences.reports.length = 0;
      await ok('lab', 'DeleteVolume', { volumeId: vol.volumeId });
    }
  });

  it('a fenced block volume published read-only is a read-only loop device of zero bytes; unpublish detaches it', async () => {
    const vol = await createVolume('pvc-fenced-block', { [REPLICATE_KEY]: 'true' }, blockCap);
    fences.fence('pvc-fenced-block', 'apps/db');
    const { staging, target } = await kubeletPaths('fenced-block');
    await ok('proxy', 'NodeStageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: blockCap, volumeContext: vol.volumeContext });
    const loop = await loopOf(vol.volumeId);
    const publishReq = { volumeId: vol.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: blockCap, volumeContext: vol.volumeContext };
    expect(await call('proxy', 'NodePublishVolume', publishReq)).toMatchObject({ ok: false, code: 'FAILED_PRECONDITION' });
    await ok('proxy', 'NodePublishVolume', { ...publishReq, readonly: true });
    const t = await stat(target);
    expect(t.isBlockDevice()).toBe(true);
    expect(t.rdev).not.toBe((await stat(loop)).rdev);
    // The device bound there: a loop device of the proxy's own empty image, read-only.
    const line = (await runOk('losetup', ['--noheadings', '--raw', '--output', 'NAME,RO,SIZELIMIT,BACK-FILE', '--list'])).split('\n').find((l) => l.includes(join(dir, 'proxy', 'placeholders')));
    expect(line).toBeDefined();
    const [device, ro] = line!.split(' ');
    expect(ro).toBe('1');
    expect(t.rdev).toBe((await stat(device!)).rdev);
    expect((await runOk('blockdev', ['--getsize64', device!])).trim()).toBe('0');
    await ok('proxy', 'NodeUnpublishVolume', { volumeId: vol.volumeId, targetPath: target });
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await runOk('losetup', ['--noheadings', '--raw', '--output', 'BACK-FILE', '--list'])).includes(join(dir, 'proxy', 'placeholders'))).toBe(false);
    await ok('proxy', 'NodeUnstageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging });
    expect(await loopOf(vol.volumeId)).toBe('');
    await ok('lab', 'DeleteVolume', { volumeId: vol.volumeId });
  });

  it('unfenced while a pod waits on the node: an opted-in volume is staged in place at its publish; one that does not opt in says to restart the pod', async () => {
    for (const [name, params] of [
      ['pvc-unfenced-optin', { [REPLICATE_KEY]: 'true' }],
      ['pvc-unfenced-plain', {}],
    ] as const) {
      const vol = await createVolume(name, params, fsCap);
      fences.fence(name, 'apps/db');
      const { staging, target } = await kubeletPaths(name);
      await ok('proxy', 'NodeStageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: fsCap, volumeContext: vol.volumeContext });
      const loop = await loopOf(vol.volumeId);
      // The pair is deleted: its fence goes (the holder pod's publish is gone already).
      fences.fences.delete(name);
      const publishReq = { volumeId: vol.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: fsCap, volumeContext: vol.volumeContext };
      if (name === 'pvc-unfenced-optin') {
        await ok('proxy', 'NodePublishVolume', publishReq);
        expect(splicer.calls).toEqual([`stage ${name} ${loop}`]);
        expect((await mountsAt(staging)).map((m) => [m.source, m.fsType])).toEqual([[loop, 'ext4']]);
        await writeFile(join(target, 'hello'), 'after the fence');
        await ok('proxy', 'NodeUnpublishVolume', { volumeId: vol.volumeId, targetPath: target });
        // From here on an ordinary opted-in volume: its unstage removes the splice too.
        await ok('proxy', 'NodeUnstageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging });
        expect(splicer.calls).toEqual([`stage ${name} ${loop}`, `unstage ${name}`]);
      } else {
        expect(await call('proxy', 'NodePublishVolume', publishReq)).toMatchObject({
          ok: false,
          code: 'FAILED_PRECONDITION',
          details: `volume ${name} was staged on this node as the fenced secondary of replication pair apps/db, which is gone: delete this pod; the kubelet stages the volume afresh once no pod on this node uses it`,
        });
        await ok('proxy', 'NodeUnstageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging });
        // Staged afresh: the driver's own, as for any volume that does not opt in.
        await ok('proxy', 'NodeStageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: fsCap, volumeContext: vol.volumeContext });
        await ok('proxy', 'NodePublishVolume', publishReq);
        expect((await mountsAt(target)).length).toBe(1);
        await ok('proxy', 'NodeUnpublishVolume', { volumeId: vol.volumeId, targetPath: target });
        await ok('proxy', 'NodeUnstageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging });
      }
      expect(await loopOf(vol.volumeId)).toBe('');
      expect(await records()).toEqual([]);
      splicer.calls.length = 0;
      await ok('lab', 'DeleteVolume', { volumeId: vol.volumeId });
    }
  });

  it('staged for writing before the fence: reported as such, left to its pods, and no new pod gets it for writing', async () => {
    const vol = await createVolume('pvc-early', {}, fsCap);
    const { staging, target } = await kubeletPaths('early');
    const stageReq = { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: fsCap, volumeContext: vol.volumeContext };
    await ok('proxy', 'NodeStageVolume', stageReq);
    fences.fence('pvc-early', 'apps/db');
    // The kubelet stages again (say, after its restart): what is there stays.
    await ok('proxy', 'NodeStageVolume', stageReq);
    expect(fences.reports).toEqual(['pvc-early staged-unfenced']);
    const publishReq = { volumeId: vol.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: fsCap, volumeContext: vol.volumeContext };
    expect(await call('proxy', 'NodePublishVolume', publishReq)).toMatchObject({ ok: false, code: 'FAILED_PRECONDITION' });
    await ok('proxy', 'NodePublishVolume', { ...publishReq, readonly: true });
    expect((await mountsAt(target)).map((m) => m.fsType)).toEqual(['tmpfs']);
    await ok('proxy', 'NodeUnpublishVolume', { volumeId: vol.volumeId, targetPath: target });
    // The driver's own stage, undone by the driver; the sidecar hears nothing is held.
    await ok('proxy', 'NodeUnstageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging });
    expect(await mountsAt(staging)).toEqual([]);
    expect(fences.reports).toEqual(['pvc-early staged-unfenced', 'pvc-early staged-unfenced', 'pvc-early none']);
    await ok('lab', 'DeleteVolume', { volumeId: vol.volumeId });
  });

  it("when the node's fences cannot be read, nothing is staged or published: UNAVAILABLE, retried by the kubelet", async () => {
    const vol = await createVolume('pvc-unknown', {}, fsCap);
    const { staging, target } = await kubeletPaths('unknown');
    fences.unreachable = true;
    const r = await call('proxy', 'NodeStageVolume', { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: fsCap, volumeContext: vol.volumeContext });
    expect(r).toMatchObject({ ok: false, code: 'UNAVAILABLE', details: expect.stringContaining('cannot tell whether volume pvc-unknown is the fenced secondary of a replication pair') as unknown as string });
    expect(await call('proxy', 'NodePublishVolume', { volumeId: vol.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: fsCap })).toMatchObject({ ok: false, code: 'UNAVAILABLE' });
    expect(await loopOf(vol.volumeId)).toBe('');
    expect(await mountsAt(staging)).toEqual([]);
    await ok('lab', 'DeleteVolume', { volumeId: vol.volumeId });
  });

  it("passes the driver's errors through with their code and message", async () => {
    const { staging, target } = await kubeletPaths('errors');
    const missing = { volumeId: 'no-such-volume', stagingTargetPath: staging, volumeCapability: fsCap };
    const direct = await call('lab', 'NodeStageVolume', missing);
    expect(direct).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    expect(await call('proxy', 'NodeStageVolume', missing)).toEqual(direct);
    expect(await call('proxy', 'NodePublishVolume', { volumeId: 'x', volumeCapability: fsCap })).toEqual(await call('lab', 'NodePublishVolume', { volumeId: 'x', volumeCapability: fsCap }));
    // Opted in but never staged through the proxy: refused rather than published without the splice.
    expect(await call('proxy', 'NodePublishVolume', { volumeId: 'pvc-x', stagingTargetPath: staging, targetPath: target, volumeCapability: fsCap, volumeContext: { [REPLICATE_KEY]: 'true' } })).toMatchObject({
      ok: false,
      code: 'FAILED_PRECONDITION',
    });
    expect(splicer.calls).toEqual([]);
  });

  it('is driven from a shell with `blockmirror csi-call`', async () => {
    const caps = await runCli(['csi-call', `unix://${dir}/proxy.sock`, 'NodeGetCapabilities'], { timeoutMs: 30_000 });
    expect(caps.code).toBe(0);
    expect(JSON.parse(caps.stdout)).toEqual({ capabilities: [{ rpc: { type: 'STAGE_UNSTAGE_VOLUME' }, type: 'rpc' }] });
    const info = await runCli(['csi-call', `unix://${dir}/proxy.sock`, 'csi.v1.Identity/GetPluginInfo'], { timeoutMs: 30_000 });
    expect(JSON.parse(info.stdout)).toMatchObject({ name: 'lab.csi.blockmirror.io' });
    const req = JSON.stringify({ volumeId: 'no-such-volume', stagingTargetPath: join(dir, 'x'), volumeCapability: blockCap });
    const expected = await runCli(['csi-call', `unix://${dir}/proxy.sock`, 'NodeStageVolume', '--json', req, '--expect-code', 'NOT_FOUND'], { timeoutMs: 30_000 });
    expect({ code: expected.code, out: JSON.parse(expected.stdout) as unknown }).toEqual({ code: 0, out: { code: 'NOT_FOUND', details: expect.stringContaining('no-such-volume') } });
    const failed = await runCli(['csi-call', `unix://${dir}/proxy.sock`, 'NodeStageVolume', '--json', req], { timeoutMs: 30_000 });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^blockmirror: error: NodeStageVolume: NOT_FOUND: /);
  });
});
