import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import winston from 'winston';
import { FailedPreconditionError } from '../errors.js';
import type { SpliceRecord } from './splice-record.js';
import { VolumeSplice, type SpliceExports, type VolumeSpliceOptions } from './volume-splice.js';

// The order of the splice's steps is its crash safety: every table swap must come after
// the durable record that tells a restarted sidecar where the volume's I/O goes, and the
// writes dm-era recorded must be handed to the pair before the era device is removed.
// The fakes log each step with the record on disk at that moment. The real kernel path
// is tested in the VM (test/vm-splice.test.ts).

const logger = winston.createLogger({ silent: true });
const SECTORS = 2048;
const ERA_BLOCK = 64 * 1024;

interface Step {
  op: string;
  /** The volume's record on disk when the step ran. */
  state: SpliceRecord['state'] | 'none';
  era: boolean;
  /** Writes of an earlier staging kept for the next attach (see unstage). */
  carried: boolean;
}

let dir = '';
let steps: Step[] = [];
let untracked: Array<[number, number]> = [];
let eraWrites: Array<[number, number]> = [];
/** Whether a lost era device's metadata file can be opened again (a node restart). */
let eraReopens = true;
/** The node's device-mapper devices: kept across sidecar restarts (new instances), lost by a node restart. */
let devices = new Map<string, string>();

function recordNow(): Omit<Step, 'op'> {
  const carried = existsSync(join(dir, 'splices', 'pv1.carried'));
  try {
    const r = JSON.parse(readFileSync(join(dir, 'splices', 'pv1.json'), 'utf8')) as SpliceRecord;
    return { state: r.state, era: r.era !== undefined, carried };
  } catch {
    return { state: 'none', era: false, carried };
  }
}

function step(op: string): void {
  steps.push({ op, ...recordNow() });
}

function fakes(): VolumeSpliceOptions {
  return {
    stateDir: dir,
    logger,
    sectorsOf: () => Promise.resolve(SECTORS),
    dropCache: (device) => {
      step(`drop cache of ${device}`);
      return Promise.resolve();
    },
    dm: {
      exists: (name) => Promise.resolve(devices.has(name)),
      create: (name, table) => {
        devices.set(name, table);
        step(`create ${name} -> ${table.split(' ').slice(2).join(' ')}`);
        return Promise.resolve();
      },
      swap: async (name, table, opts) => {
        if (opts?.whileSuspended) {
          step(`suspend ${name}`);
          await opts.whileSuspended();
        }
        devices.set(name, table);
        step(`swap${opts?.noflush ? ' noflush' : ''} ${name} -> ${table.split(' ').at(-1) === '0' ? table.split(' ')[3] : table.split(' ').at(-1)}`);
      },
      remove: (name) => {
        if (devices.delete(name)) step(`remove ${name}`);
        return Promise.resolve();
      },
    },
    nbd: {
      connect: () => {
        step('nbd connect');
        return Promise.resolve({ index: 0, size: SECTORS * 512 });
      },
      reconfigure: () => {
        step('nbd reconfigure');
        return Promise.resolve({ index: 0, size: SECTORS * 512 });
      },
      disconnect: () => {
        step('nbd disconnect');
        return Promise.resolve();
      },
    },
    era: {
      create: (name, device) => {
        devices.set(name, `era ${device}`);
        step(`era create over ${device}`);
        return Promise.resolve('/dev/loop7');
      },
      written: () => {
        step('era read');
        return Promise.resolve({ blockBytes: ERA_BLOCK, ranges: eraWrites });
      },
      reopen: (name, device, _sectors, metaFile) => {
        step(`era reopen over ${device} on ${metaFile.split('/').slice(-2).join('/')}`);
        if (!eraReopens) return Promise.reject(new Error('device-mapper: reload ioctl failed: Invalid argument'));
        devices.set(name, `era ${device}`);
        return Promise.resolve('/dev/loop9');
      },
      remove: (name) => {
        devices.delete(name);
        step('era remove');
        return Promise.resolve();
      },
    },
  };
}

const exports: SpliceExports = {
  exportOf: () => ({ device: '/dev/vdx', socket: '/run/pv1.sock', blockSize: 65536 }),
  recordUntrackedWrites: (_pair, ranges) => {
    untracked.push(...ranges);
    step('pair records untracked writes');
    return Promise.resolve();
  },
  pairNames: () => ['pair1'],
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bm-splice-'));
  steps = [];
  untracked = [];
  eraWrites = [];
  eraReopens = true;
  devices = new Map();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ops = (): string[] => steps.map((s) => s.op);
const at = (op: string): Step => steps.find((s) => s.op === op)!;

describe('VolumeSplice', () => {
  it('stages through dm-era, recording the volume before the top device exists', async () => {
    const splice = new VolumeSplice(fakes());
    const v = await splice.stage('pv1', '/dev/vdx');
    expect(v).toMatchObject({ state: 'direct', dmDevice: '/dev/mapper/blockmirror-pv1' });
    expect(ops()).toEqual(['era create over /dev/vdx', 'create blockmirror-pv1 -> linear /dev/mapper/blockmirror-pv1-era 0']);
    // No write can reach the volume through the top device before the record exists.
    expect(at('create blockmirror-pv1 -> linear /dev/mapper/blockmirror-pv1-era 0')).toMatchObject({ state: 'direct', era: true });
  });

  it('lists each volume with its top device\'s open count, and says when it could not read it', async () => {
    const o = fakes();
    let answer: Promise<Map<string, number>> = Promise.resolve(new Map([['blockmirror-pv1', 1], ['blockmirror-pv1-era', 1]]));
    o.dm.openCounts = () => answer;
    const splice = new VolumeSplice(o);
    await splice.stage('pv1', '/dev/vdx');
    expect(await splice.list()).toEqual([expect.objectContaining({ pv: 'pv1', openCount: 1, openCountKnown: true })]);
    answer = Promise.resolve(new Map([['blockmirror-pv1', 0]]));
    expect(await splice.list()).toEqual([expect.objectContaining({ openCount: 0, openCountKnown: true })]);
    // Unknown is never 0: the operator waits for a count it can read.
    answer = Promise.reject(new Error('dmsetup: no permission'));
    expect(await splice.list()).toEqual([expect.objectContaining({ openCount: 0, openCountKnown: false })]);
    expect(await new VolumeSplice(fakes()).list()).toEqual([expect.objectContaining({ openCountKnown: false })]);
  });

  it('attaches: the record says attached before the swap, and what dm-era saw is out of sync before it goes', async () => {
    const splice = new VolumeSplice(fakes());
    await splice.stage('pv1', '/dev/vdx');
    steps = [];
    eraWrites = [
      [0, 2],
      [10, 11],
    ];
    await splice.attach('pv1', 'pair1', exports);
    expect(ops()).toEqual([
      'nbd connect',
      'create blockmirror-pv1-tap -> multipath 3 queue_if_no_path queue_mode bio 0 1 1 round-robin 0 1 0 /dev/nbd0',
      // dm-era's writes went beneath the sidecar's page cache of the device: a page read
      // before would be shipped as the new bytes, or a small write through the export
      // merged into it and the stale rest written back. Dropped with the device suspended:
      // after the last direct write, before the first one through the export.
      'suspend blockmirror-pv1',
      'drop cache of /dev/vdx',
      'swap blockmirror-pv1 -> /dev/mapper/blockmirror-pv1-tap',
      'era read',
      'pair records untracked writes',
      'era remove',
    ]);
    expect(at('swap blockmirror-pv1 -> /dev/mapper/blockmirror-pv1-tap').state).toBe('attached');
    // The era device is the only record of those writes until the pair has them.
    expect(at('era remove')).toMatchObject({ state: 'attached', era: false });
    expect(untracked).toEqual([
      [0, 2 * ERA_BLOCK],
      [10 * ERA_BLOCK, ERA_BLOCK],
    ]);
  });

  it('an attach cut short after its record is finished by the next attach, or by a restarted sidecar: the writes dm-era saw are never dropped', async () => {
    for (const resume of ['attach', 'recover'] as const) {
      const splice = new VolumeSplice(fakes());
      await splice.stage('pv1', '/dev/vdx');
      eraWrites = [[0, 1]];
      // The sidecar stopped (or the caller gave up) after the record, before the writes
      // were recorded: here, the pair refuses them once.
      const failing: SpliceExports = { ...exports, recordUntrackedWrites: () => Promise.reject(new Error('stopped')) };
      await expect(splice.attach('pv1', 'pair1', failing)).rejects.toThrow('stopped');
      expect((await splice.get('pv1')).state).toBe('attached');
      steps = [];
      untracked = [];
      if (resume === 'attach') await splice.attach('pv1', 'pair1', exports);
      else await new VolumeSplice(fakes()).recover(exports);
      expect(ops().filter((o) => !o.startsWith('nbd'))).toEqual([
        'suspend blockmirror-pv1',
        'drop cache of /dev/vdx',
        'swap blockmirror-pv1 -> /dev/mapper/blockmirror-pv1-tap',
        'era read',
        'pair records untracked writes',
        'era remove',
      ]);
      expect(untracked).toEqual([[0, ERA_BLOCK]]);
      // Done: attaching again changes nothing.
      steps = [];
      await splice.attach('pv1', 'pair1', exports);
      expect(ops()).toEqual([]);
      await splice.detach('pv1', exports);
    }
  });

  it('refuses to unstage an attached volume and to attach another pair', async () => {
    const splice = new VolumeSplice(fakes());
    await splice.stage('pv1', '/dev/vdx');
    await splice.attach('pv1', 'pair1', exports);
    await expect(splice.unstage('pv1', exports)).rejects.toBeInstanceOf(FailedPreconditionError);
    await expect(splice.attach('pv1', 'pair2', exports)).rejects.toBeInstanceOf(FailedPreconditionError);
  });

  it('falls back through dm-era with the record first, and on return ships what dm-era saw before dropping it', async () => {
    const splice = new VolumeSplice(fakes());
    await splice.stage('pv1', '/dev/vdx');
    await splice.attach('pv1', 'pair1', exports);
    steps = [];
    untracked = [];
    await splice.fallbackAll();
    // The dead sidecar's acknowledged writes in the kernel's page cache reach the disk
    // before any write through dm-era can.
    expect(ops()).toEqual(['era create over /dev/vdx', 'nbd disconnect', 'suspend blockmirror-pv1-tap', 'drop cache of /dev/vdx', 'swap noflush blockmirror-pv1-tap -> /dev/mapper/blockmirror-pv1-era']);
    // Recorded before any write can land on the era device unseen by a restarted sidecar.
    expect(at('swap noflush blockmirror-pv1-tap -> /dev/mapper/blockmirror-pv1-era')).toMatchObject({ state: 'fallback', era: true });

    steps = [];
    eraWrites = [[3, 4]];
    // A restarted sidecar (a fresh instance: nothing in memory) recovers from the record.
    await new VolumeSplice(fakes()).recover(exports);
    expect(ops()).toEqual([
      'nbd connect',
      'suspend blockmirror-pv1-tap',
      'drop cache of /dev/vdx',
      'swap noflush blockmirror-pv1-tap -> /dev/nbd0',
      'era read',
      'pair records untracked writes',
      'era remove',
    ]);
    // Back through the export before the era device is read: no write falls between.
    expect(at('era read').state).toBe('fallback');
    expect(at('era remove')).toMatchObject({ state: 'attached', era: false });
    expect(untracked).toEqual([[3 * ERA_BLOCK, ERA_BLOCK]]);
  });

  it('detaches onto dm-era, recorded before the swap, so the next attach knows the writes made meanwhile', async () => {
    const splice = new VolumeSplice(fakes());
    await splice.stage('pv1', '/dev/vdx');
    await splice.attach('pv1', 'pair1', exports);
    steps = [];
    await splice.detach('pv1', exports);
    // While the tap is suspended, the sidecar's writes still in the device's page cache go
    // to disk: written back later, they would land over newer writes made through dm-era.
    expect(ops()).toEqual([
      'era create over /dev/vdx',
      'suspend blockmirror-pv1',
      'drop cache of /dev/vdx',
      'swap blockmirror-pv1 -> /dev/mapper/blockmirror-pv1-era',
      'remove blockmirror-pv1-tap',
      'nbd disconnect',
    ]);
    expect(at('swap blockmirror-pv1 -> /dev/mapper/blockmirror-pv1-era')).toMatchObject({ state: 'direct', era: true });
    await splice.unstage('pv1', exports);
    expect(await splice.list()).toEqual([]);
  });

  it('unstaged, keeps what dm-era saw durably before the era device goes, and hands it to the pair attached to a later staging', async () => {
    const splice = new VolumeSplice(fakes());
    await splice.stage('pv1', '/dev/vdx');
    await splice.attach('pv1', 'pair1', exports);
    // Paused: detached onto dm-era; the application writes, then its pod goes.
    await splice.detach('pv1', exports);
    eraWrites = [[7, 9]];
    steps = [];
    await splice.unstage('pv1', exports);
    expect(ops()).toEqual(['remove blockmirror-pv1', 'era read', 'era remove']);
    // Nothing can write once the top device is gone; the marks are on disk before the era device goes.
    expect(at('era read')).toMatchObject({ state: 'direct', era: true, carried: false });
    expect(at('era remove')).toMatchObject({ state: 'direct', carried: true });
    expect(await splice.list()).toEqual([]);

    // The pod back: a fresh staging (its own dm-era), the writes made before it included.
    await splice.stage('pv1', '/dev/vdx');
    eraWrites = [[1, 2]];
    steps = [];
    untracked = [];
    await splice.attach('pv1', 'pair1', exports);
    expect(untracked).toEqual([
      [1 * ERA_BLOCK, ERA_BLOCK],
      [7 * ERA_BLOCK, 2 * ERA_BLOCK],
    ]);
    // Dropped only once the pair has them.
    expect(at('pair records untracked writes').carried).toBe(true);
    expect(at('era remove').carried).toBe(false);

    // Handed over once: a staging with nothing written carries nothing to the next.
    await splice.detach('pv1', exports);
    eraWrites = [];
    await splice.unstage('pv1', exports);
    expect(existsSync(join(dir, 'splices', 'pv1.carried'))).toBe(false);
    await splice.stage('pv1', '/dev/vdx');
    untracked = [];
    await splice.attach('pv1', 'pair1', exports);
    expect(untracked).toEqual([]);

    // The pair deleted after its detach: nobody takes what the volume got meanwhile, and
    // nothing of it stays on the node.
    await splice.detach('pv1', exports);
    eraWrites = [[3, 4]];
    steps = [];
    await splice.unstage('pv1', { pairNames: () => [] });
    expect(ops()).toEqual(['remove blockmirror-pv1', 'era remove']);
    expect(existsSync(join(dir, 'splices', 'pv1.carried'))).toBe(false);
  });

  it('an unstage cut short after the era device went carries all of the volume: its marks can no longer be read', async () => {
    const o = fakes();
    const remove = o.era.remove;
    let crash = true;
    o.era.remove = async (name, loop, meta) => {
      await remove(name, loop, meta);
      if (crash) throw new Error('stopped');
    };
    const splice = new VolumeSplice(o);
    await splice.stage('pv1', '/dev/vdx');
    eraWrites = [[0, 1]];
    await expect(splice.unstage('pv1', exports)).rejects.toThrow('stopped');
    crash = false;
    // Its metadata file went with it.
    eraReopens = false;
    // The kubelet asks again.
    steps = [];
    await splice.unstage('pv1', exports);
    expect(ops()).toEqual(['era reopen over /dev/vdx on splices/pv1.era', 'era remove']);
    await splice.stage('pv1', '/dev/vdx');
    eraWrites = [];
    untracked = [];
    await splice.attach('pv1', 'pair1', exports);
    expect(untracked).toEqual([[0, SECTORS * 512]]);
  });

  describe('after a node restart (its device-mapper, loop and NBD devices gone, the records kept)', () => {
    /** pv1 left in `state` by a node that then lost its devices. */
    async function leftBy(state: 'attached' | 'fallback' | 'direct'): Promise<void> {
      const splice = new VolumeSplice(fakes());
      await splice.stage('pv1', '/dev/vdx');
      await splice.attach('pv1', 'pair1', exports);
      if (state === 'fallback') await splice.fallbackAll();
      if (state === 'direct') await splice.detach('pv1', exports);
      devices = new Map();
      steps = [];
      untracked = [];
    }

    it('a restarted sidecar neither reconnects nor falls back a volume whose devices are gone, nor does its supervisor', async () => {
      await leftBy('attached');
      const splice = new VolumeSplice(fakes());
      await splice.recover(exports);
      await splice.fallbackAll();
      expect(ops()).toEqual([]);
      expect((await splice.get('pv1')).state).toBe('attached');
    });

    it('the next stage sets it up afresh, direct through a new dm-era, for the same pair; an attached volume carries nothing', async () => {
      await leftBy('attached');
      const splice = new VolumeSplice(fakes());
      await splice.recover(exports);
      // The volume back at another path: the same volume, by its PV.
      const v = await splice.stage('pv1', '/dev/vdy');
      expect(v).toMatchObject({ state: 'direct', device: '/dev/vdy', pair: 'pair1' });
      expect(ops()).toEqual(['era create over /dev/vdy', 'create blockmirror-pv1 -> linear /dev/mapper/blockmirror-pv1-era 0']);
      expect(at('create blockmirror-pv1 -> linear /dev/mapper/blockmirror-pv1-era 0')).toMatchObject({ state: 'direct', era: true });
      // Every write through the tap the pair marked itself.
      await splice.attach('pv1', 'pair1', { ...exports, exportOf: () => ({ device: '/dev/vdy', socket: '/run/pv1.sock', blockSize: 65536 }) });
      expect(untracked).toEqual([]);
    });

    for (const state of ['direct', 'fallback'] as const) {
      it(`${state}: the lost era device comes back over its metadata file, with its marks, before the top device; the next attach reads them`, async () => {
        await leftBy(state);
        const splice = new VolumeSplice(fakes());
        await splice.recover(exports);
        await splice.stage('pv1', '/dev/vdx');
        expect(ops()).toEqual(['era reopen over /dev/vdx on splices/pv1.era', 'create blockmirror-pv1 -> linear /dev/mapper/blockmirror-pv1-era 0']);
        expect(at('create blockmirror-pv1 -> linear /dev/mapper/blockmirror-pv1-era 0')).toMatchObject({ state: 'direct', era: true, carried: false });
        // What the reopened device reports: the marks from before the cut and after.
        eraWrites = [[4, 6]];
        await splice.attach('pv1', 'pair1', exports);
        expect(untracked).toEqual([[4 * ERA_BLOCK, 2 * ERA_BLOCK]]);
      });
    }

    it('unstaged before it is staged again: the lost era device\'s marks, read over its metadata file, are carried', async () => {
      await leftBy('direct');
      const splice = new VolumeSplice(fakes());
      eraWrites = [[2, 3]];
      await splice.unstage('pv1', exports);
      // The stale loop device number is not detached: the reopened device's is.
      expect(ops()).toEqual(['era reopen over /dev/vdx on splices/pv1.era', 'era read', 'era remove']);
      expect(at('era remove').carried).toBe(true);
      await splice.stage('pv1', '/dev/vdx');
      eraWrites = [];
      await splice.attach('pv1', 'pair1', exports);
      expect(untracked).toEqual([[2 * ERA_BLOCK, ERA_BLOCK]]);
    });

    it('metadata it cannot open again counts as all of the volume written, carried before a fresh era device replaces it', async () => {
      await leftBy('direct');
      eraReopens = false;
      const splice = new VolumeSplice(fakes());
      await splice.stage('pv1', '/dev/vdx');
      expect(ops()).toEqual(['era reopen over /dev/vdx on splices/pv1.era', 'era create over /dev/vdx', 'create blockmirror-pv1 -> linear /dev/mapper/blockmirror-pv1-era 0']);
      expect(at('era create over /dev/vdx').carried).toBe(true);
      await splice.attach('pv1', 'pair1', exports);
      expect(untracked).toEqual([[0, SECTORS * 512]]);
    });

    it('a stage cut short before its top device (its era device there) is finished as it was begun', async () => {
      const o = fakes();
      const create = o.dm.create;
      o.dm.create = (name, table) => (name === 'blockmirror-pv1' ? Promise.reject(new Error('stopped')) : create(name, table));
      await expect(new VolumeSplice(o).stage('pv1', '/dev/vdx')).rejects.toThrow('stopped');
      steps = [];
      await new VolumeSplice(fakes()).stage('pv1', '/dev/vdx');
      expect(ops()).toEqual(['create blockmirror-pv1 -> linear /dev/mapper/blockmirror-pv1-era 0']);
    });
  });
});
