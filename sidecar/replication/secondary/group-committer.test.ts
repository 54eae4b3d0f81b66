import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import winston from 'winston';
import { openSecondaryEndpoint } from '../../../test/helpers/open-secondary-endpoint.js';
import { openTempVolume, type TempVolume } from '../../../test/helpers/temp-volume.js';
import type { DecodedRun } from '../wire/frame-builder.js';
import { GroupCommitter } from './group-committer.js';
import { SecondaryEndpoint } from './secondary-endpoint.js';

const KiB = 1024;
const logger = winston.createLogger({ silent: true });

/** Two secondaries, each its own consistency group, sharing one state dir as on a node. */
describe('GroupCommitter recovery', () => {
  const tmps: TempVolume[] = [];
  let stateDir: string;
  const eps = new Map<string, SecondaryEndpoint>();

  const endpoint = async (name: string): Promise<SecondaryEndpoint> => {
    const tmp = await openTempVolume(`bm-commit-${name}-`, 256 * KiB);
    tmps.push(tmp);
    const dir = join(stateDir, 'pairs', name);
    const ep = await openSecondaryEndpoint(name, tmp.volume, 4096, dir, logger);
    eps.set(name, ep);
    return ep;
  };
  const committer = (): GroupCommitter => new GroupCommitter({ dir: join(stateDir, 'groups'), lookup: (n) => eps.get(n), logger, retryMs: 50 });
  const image = (name: string): Buffer => readFileSync(tmps.find((t) => t.dir.includes(`bm-commit-${name}-`))!.path);
  const data = (offset: number, fill: number): DecodedRun => ({ offset, length: 4 * KiB, zero: false, data: Buffer.alloc(4 * KiB, fill) });

  /** As a crash right after the commit record was written: journals sealed, record on disk, nothing applied. */
  const crashAfterRecord = async (cg: string, pair: string, group: number, runs: DecodedRun[][]): Promise<void> => {
    const ep = eps.get(pair)!;
    for (const r of runs) await ep.journal.stage(group, r);
    await ep.journal.seal(group, runs.length);
    mkdirSync(join(stateDir, 'groups'), { recursive: true });
    writeFileSync(join(stateDir, 'groups', `${cg}.commit.json`), JSON.stringify({ consistencyGroup: cg, group, timeMs: 1000, members: [{ pair, frames: runs.length }] }) + '\n');
  };

  beforeEach(async () => {
    const t = await openTempVolume('bm-commit-state-', 4096);
    tmps.push(t);
    stateDir = join(t.dir, 'state');
    await endpoint('a');
    await endpoint('b');
  });

  afterEach(async () => {
    for (const ep of eps.values()) await ep.journal.close();
    eps.clear();
    for (const t of tmps.splice(0)) await t.remove();
  });

  it('a corrupt journal is quarantined on its own pair; the other group is applied and the sidecar goes on', async () => {
    await crashAfterRecord('cg-a', 'a', 5, [[data(0, 0xa1)], [data(8 * KiB, 0xa2)]]);
    await crashAfterRecord('cg-b', 'b', 6, [[data(0, 0xb1)]]);
    // Bit rot in a's second record.
    const fh = await open(join(stateDir, 'pairs', 'a', 'journal', '5.jnl'), 'r+');
    await fh.write(Buffer.from([0xee]), 0, 1, 2 * 24 + 4 * KiB + 10);
    await fh.close();

    await committer().recover([...eps.values()]);

    // a: nothing written (its first, good record neither), the file kept aside, the pair says why.
    expect(image('a').equals(Buffer.alloc(256 * KiB))).toBe(true);
    expect(existsSync(join(stateDir, 'pairs', 'a', 'journal', 'quarantine', '5.jnl'))).toBe(true);
    expect(eps.get('a')!.lastError).toMatch(/group 5 .*quarantined/);
    expect(eps.get('a')!.state).toBe('Retrying');
    // b: applied, journal and record gone.
    expect(image('b').subarray(0, 4 * KiB).equals(Buffer.alloc(4 * KiB, 0xb1))).toBe(true);
    expect(eps.get('b')!.lastError).toBe('');
    expect(existsSync(join(stateDir, 'pairs', 'b', 'journal', '6.jnl'))).toBe(false);
    expect(existsSync(join(stateDir, 'groups', 'cg-a.commit.json'))).toBe(false);
    expect(existsSync(join(stateDir, 'groups', 'cg-b.commit.json'))).toBe(false);
  });

  it('a journal missing under a commit record is reported lost, never taken as already applied', async () => {
    await crashAfterRecord('cg-a', 'a', 7, [[data(0, 0xa1)]]);
    await eps.get('a')!.journal.remove(7);
    await committer().recover([...eps.values()]);
    expect(eps.get('a')!.lastError).toMatch(/group 7 .*missing/);
    expect(existsSync(join(stateDir, 'groups', 'cg-a.commit.json'))).toBe(false);
  });

  it('finishes a committed group, then clears the record, then removes the journal', async () => {
    await crashAfterRecord('cg-b', 'b', 8, [[data(4 * KiB, 0xb8)]]);
    await committer().recover([...eps.values()]);
    expect(image('b').subarray(4 * KiB, 8 * KiB).equals(Buffer.alloc(4 * KiB, 0xb8))).toBe(true);
    expect(eps.get('b')!.lastConsistencyPointTimeMs).toBe(1000);
    expect(existsSync(join(stateDir, 'pairs', 'b', 'journal', '8.jnl'))).toBe(false);
  });

  it('reads a commit record of format 1 (members by name; a missing journal was applied then)', async () => {
    const ep = eps.get('b')!;
    await ep.journal.stage(9, [data(0, 0x99)]);
    await ep.journal.seal(9, 1);
    mkdirSync(join(stateDir, 'groups'), { recursive: true });
    writeFileSync(join(stateDir, 'groups', 'old.commit.json'), JSON.stringify({ consistencyGroup: 'old', group: 9, timeMs: 5, members: ['b', 'a'] }) + '\n');
    await committer().recover([...eps.values()]);
    expect(image('b').subarray(0, 4 * KiB).equals(Buffer.alloc(4 * KiB, 0x99))).toBe(true);
    expect(eps.get('a')!.lastError).toBe('');
  });
});
