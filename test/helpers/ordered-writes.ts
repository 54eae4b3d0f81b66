import { open } from 'node:fs/promises';
import type { NbdTestClient } from './nbd-test-client.js';

// A chain of dependent writes and the checks made on the volumes that received it:
// write i (a record holding i) goes to slot i mod SLOTS of volume i mod VOLUMES and is
// issued only after write i-1 was acknowledged. A volume set that is "a prefix" holds,
// for some P, exactly the last write <= P of every slot: a real past state of the
// primary, never a write without the ones before it.

export const RECORD = 4096;
const MAGIC = 0x424d5251; // "BMRQ"

export interface ChainLayout {
  /** Slots per volume; slot s is at s * stride. */
  slots: number;
  /** Bytes between slots: a tracking block, so each write dirties one block. */
  stride: number;
  volumes: number;
}

/** The record of write `seq`: a header and a body derived from it (a torn record shows). */
export function chainRecord(seq: number): Buffer {
  const b = Buffer.alloc(RECORD);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(seq, 4);
  for (let at = 8; at < RECORD; at += 4) b.writeUInt32LE((seq * 2654435761 + at) >>> 0, at);
  return b;
}

/** The sequence number a slot holds (0: never written); throws on a torn or foreign record. */
export function parseChainRecord(b: Buffer, where: string): number {
  if (b.equals(Buffer.alloc(RECORD))) return 0;
  const seq = b.readUInt32LE(4);
  if (b.readUInt32LE(0) !== MAGIC || !b.equals(chainRecord(seq))) throw new Error(`${where}: torn or foreign record`);
  return seq;
}

/** Where write `seq` goes. */
export function placeOf(seq: number, layout: ChainLayout): { volume: number; offset: number; slot: number } {
  const volume = seq % layout.volumes;
  const slot = Math.floor(seq / layout.volumes) % layout.slots;
  return { volume, slot, offset: slot * layout.stride };
}

/**
 * A slot whose write `newer` was in flight when the power went: it may hold any mix of
 * 512-byte sectors of `newer` and of the write before it (`older`, 0: never written), as
 * a disk that only keeps sectors atomic may leave an unacknowledged write. Read as `older`.
 */
export interface TornSlot {
  volume: number;
  slot: number;
  older: number;
  newer: number;
}

const SECTOR = 512;

function isSectorMix(b: Buffer, older: number, newer: number): boolean {
  const a = older === 0 ? Buffer.alloc(RECORD) : chainRecord(older);
  const n = chainRecord(newer);
  for (let at = 0; at < RECORD; at += SECTOR) {
    const sector = b.subarray(at, at + SECTOR);
    if (!sector.equals(a.subarray(at, at + SECTOR)) && !sector.equals(n.subarray(at, at + SECTOR))) return false;
  }
  return true;
}

/** The sequence number in every slot of every volume image (see TornSlot for `torn`). */
export async function readChain(images: string[], layout: ChainLayout, torn: readonly TornSlot[] = []): Promise<number[][]> {
  const out: number[][] = [];
  for (const [v, path] of images.entries()) {
    const fh = await open(path, 'r');
    try {
      const row: number[] = [];
      for (let s = 0; s < layout.slots; s++) {
        const b = Buffer.alloc(RECORD);
        await fh.read(b, 0, RECORD, s * layout.stride);
        try {
          row.push(parseChainRecord(b, `${path} slot ${s}`));
        } catch (err) {
          const t = torn.find((x) => x.volume === v && x.slot === s && isSectorMix(b, x.older, x.newer));
          if (t === undefined) throw err;
          row.push(t.older);
        }
      }
      out.push(row);
    } finally {
      await fh.close();
    }
  }
  return out;
}

/** What every slot holds after exactly the writes 1..p. */
export function chainStateAt(p: number, layout: ChainLayout): number[][] {
  const expected = Array.from({ length: layout.volumes }, () => new Array<number>(layout.slots).fill(0));
  for (let seq = Math.max(1, p - layout.volumes * layout.slots); seq <= p; seq++) {
    const { volume, slot } = placeOf(seq, layout);
    expected[volume]![slot] = seq;
  }
  return expected;
}

/** The prefix length P the images hold, or an error saying why they are no prefix. */
export async function chainPrefix(images: string[], layout: ChainLayout, torn: readonly TornSlot[] = []): Promise<{ prefix: number } | { error: string }> {
  let slots: number[][];
  try {
    slots = await readChain(images, layout, torn);
  } catch (err) {
    return { error: (err as Error).message };
  }
  const p = Math.max(...slots.flat());
  const expected = chainStateAt(p, layout);
  for (let v = 0; v < layout.volumes; v++) {
    for (let s = 0; s < layout.slots; s++) {
      if (slots[v]![s] !== expected[v]![s]) return { error: `not a prefix of the writes: the newest write is ${p}, but volume ${v} slot ${s} holds ${slots[v]![s]} instead of ${expected[v]![s]}` };
    }
  }
  return { prefix: p };
}

/**
 * Checks that every write up to `acked` is on the images (each slot holds the last
 * write <= acked that maps to it, or a later one written after it): nothing
 * acknowledged is missing. Returns the problems found.
 */
export async function missingAcked(images: string[], layout: ChainLayout, acked: number, torn: readonly TornSlot[] = []): Promise<string[]> {
  let slots: number[][];
  try {
    slots = await readChain(images, layout, torn);
  } catch (err) {
    return [(err as Error).message];
  }
  const expected = chainStateAt(acked, layout);
  const problems: string[] = [];
  for (let v = 0; v < layout.volumes; v++) {
    for (let s = 0; s < layout.slots; s++) {
      const found = slots[v]![s]!;
      const want = expected[v]![s]!;
      // The one write in flight when the writer stopped may have landed (writes go one
      // at a time), replacing the acknowledged one of its slot.
      const next = placeOf(acked + 1, layout);
      const ok = found === want || (found === acked + 1 && next.volume === v && next.slot === s);
      if (!ok) problems.push(`volume ${v} slot ${s}: holds write ${found}, acknowledged write ${want} is missing`);
    }
  }
  return problems;
}

/**
 * Dependent writes, one at a time, spread over the clients' volumes in turn; each with
 * FUA when asked, so that its acknowledgement means durable. Stops on request or on the
 * first failure (a killed primary); `acked` is the last write acknowledged.
 */
export class ChainWriter {
  acked: number;
  error: Error | null = null;
  #stopped = false;
  readonly #done: Promise<void>;

  constructor(clients: NbdTestClient[], layout: ChainLayout, opts: { from: number; fua: boolean }) {
    this.acked = opts.from - 1;
    this.#done = (async () => {
      try {
        for (let seq = opts.from; !this.#stopped; seq++) {
          const { volume, offset } = placeOf(seq, layout);
          const r = await clients[volume]!.write(offset, chainRecord(seq), opts.fua);
          if (r.error !== 0) throw new Error(`write ${seq} refused: NBD error ${r.error}`);
          this.acked = seq;
        }
      } catch (err) {
        this.error = err as Error;
      }
    })();
  }

  /** Stops issuing writes; resolves once the one in flight is answered or failed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#done;
  }
}
