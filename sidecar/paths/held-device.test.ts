import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FenceStore } from '../fence/fence-store.js';
import { SpliceRecords } from '../splice/splice-record.js';
import { heldDevice } from './held-device.js';

// A block device every test machine here has (loop is built in); records name it, nothing opens it.
const DEVICE = '/dev/loop0';

let stateDir = '';

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'bm-held-'));
  await mkdir(join(stateDir, 'splices'));
});
afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

describe('heldDevice', () => {
  it('names a device a splice record stages, by device number', async () => {
    const fences = new FenceStore(stateDir);
    const rdev = statSync(DEVICE).rdev;
    expect(await heldDevice(stateDir, fences)(rdev)).toBeNull();
    await new SpliceRecords(stateDir).save({ pv: 'pv1', device: DEVICE, sectors: 8, state: 'direct' });
    expect(await heldDevice(stateDir, fences)(rdev)).toBe('staged by the node splice as /dev/mapper/blockmirror-pv1');
  });

  it('names the device a fence holds, only while it is held', async () => {
    const fences = new FenceStore(stateDir);
    const rdev = statSync(DEVICE).rdev;
    await fences.fence('pv2', 'default/db', 'pv2');
    expect(await heldDevice(stateDir, fences)(rdev)).toBeNull();
    await fences.report('pv2', 'held', DEVICE);
    expect(await heldDevice(stateDir, fences)(rdev)).toBe('held for fenced volume pv2');
    await fences.report('pv2', 'staged-unfenced', '');
    expect(await heldDevice(stateDir, fences)(rdev)).toBeNull();
  });
});
