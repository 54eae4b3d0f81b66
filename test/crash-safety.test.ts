import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirtyTracker } from '../sidecar/bitmap/dirty-tracker.js';
import { NbdTestClient } from './helpers/nbd-test-client.js';
import { SidecarProcess } from './helpers/sidecar-process.js';

const MiB = 1 << 20;
const VOLUME = 256 * MiB;
const BLOCK = 64 * 1024;
const CELL = 16 * 1024;

/** Deterministic contents for write number `seq`. */
function pattern(seq: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let h = createHash('sha256').update(`w${seq}`).digest();
  for (let i = 0; i < length; i += h.length) {
    h.copy(out, i);
    h = createHash('sha256').update(h).digest();
  }
  return out;
}

interface Acked {
  offset: number;
  data: Buffer;
}

describe('crash safety of the dirty-block tracking (kill -9 of the sidecar)', () => {
  let dir: string;
  let volume: string;
  let sc: SidecarProcess | undefined;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'bm-crash-'));
    volume = join(dir, 'vol.img');
    writeFileSync(volume, '');
    truncateSync(volume, VOLUME);
  });

  afterAll(async () => {
    await sc?.kill9();
    rmSync(dir, { recursive: true, force: true });
  });

  it('after each kill -9 the dirty set covers every changed block and acknowledged data is intact', async () => {
    const stateDir = join(dir, 'state');
    sc = await SidecarProcess.start({ stateDir });
    await sc.cli('pair', 'create', 'crash', '--volume', volume, '--role', 'primary', '--nbd-listen', '127.0.0.1:0');
    const acked: Acked[] = [];
    // Random cells, each written at most once, at unaligned offsets so writes straddle
    // 64 KiB tracking blocks and 4 MiB extents.
    const cells = [...Array(VOLUME / CELL).keys()].sort(() => Math.random() - 0.5);
    let seq = 0;

    for (let round = 0; round < 3; round++) {
      const { nbdAddress } = await sc.status('crash');
      const client = await NbdTestClient.connectExport({ tcp: nbdAddress }, 'crash');
      let stop = false;
      const inFlight = new Set<Promise<void>>();
      const writer = (async () => {
        while (!stop) {
          if (inFlight.size >= 16) {
            await Promise.race(inFlight);
            continue;
          }
          const cell = cells[seq % cells.length]!;
          const mySeq = seq++;
          const offset = cell * CELL + (mySeq % 16) * 512;
          const data = pattern(mySeq, 4096 + (mySeq % 3) * 2048);
          const p: Promise<void> = client.write(offset, data).then(
            (r) => {
              if (r.error === 0) acked.push({ offset, data });
            },
            () => undefined, // the kill: unacknowledged, nothing promised
          );
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
        }
      })();
      // Kill at a random moment while writes are in flight.
      const target = acked.length + 200 + Math.floor(Math.random() * 400);
      const deadline = Date.now() + 30_000;
      while (acked.length < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(inFlight.size).toBeGreaterThan(0);
      stop = true;
      await sc.kill9();
      await writer;
      client.destroy();

      // Everything on disk that is not zero was written by us: it must be dirty.
      const image = readFileSync(volume);
      const changed: number[] = [];
      const zero = Buffer.alloc(BLOCK);
      for (let b = 0; b < VOLUME / BLOCK; b++) if (!image.subarray(b * BLOCK, (b + 1) * BLOCK).equals(zero)) changed.push(b);
      expect(changed.length).toBeGreaterThan(0);

      sc = await SidecarProcess.start({ stateDir });
      const status = await sc.status('crash');
      expect(status.dirtyBlocks).toBeGreaterThanOrEqual(changed.length);
      expect(sc.log.some((l) => l.includes('recovered dirty extents'))).toBe(true);

      // Acknowledged data reads back intact through the restarted export.
      const reader = await NbdTestClient.connectExport({ tcp: status.nbdAddress }, 'crash');
      for (const a of acked) {
        const r = await reader.read(a.offset, a.data.length);
        expect(r.error).toBe(0);
        if (!r.data.equals(a.data)) throw new Error(`acknowledged write at ${a.offset} lost`);
      }
      await reader.disconnect();

      // The exact dirty set: stop gracefully (bitmap persisted) and read it back.
      expect((await sc.stop()).code).toBe(0);
      const tracker = await DirtyTracker.open({ path: join(stateDir, 'pairs', 'crash', 'dirty.log'), volumeBytes: VOLUME, blockSize: BLOCK, sweepIntervalMs: 0 });
      try {
        const missing = changed.filter((b) => !tracker.isDirty(b));
        expect(missing).toEqual([]);
        for (const a of acked) {
          for (let b = Math.floor(a.offset / BLOCK); b <= Math.floor((a.offset + a.data.length - 1) / BLOCK); b++) expect(tracker.isDirty(b)).toBe(true);
        }
        expect(tracker.dirtyBlocks).toBe(status.dirtyBlocks);
      } finally {
        await tracker.close();
      }
      sc = await SidecarProcess.start({ stateDir });
    }
    expect(acked.length).toBeGreaterThan(600);
  });
});
