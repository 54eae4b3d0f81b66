import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'winston';
import type { SocketExport } from '../pair/pair.js';
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from '../errors.js';
import type { Dmsetup } from './dmsetup.js';
import type { EraTracker } from './era-tracker.js';
import type { NbdNetlink } from './nbd-netlink.js';
import { runTool } from '../host/run-tool.js';
import { SpliceRecords, validatePvName, type SpliceRecord } from './splice-record.js';
import { CarriedWrites, type ByteRanges } from './carried-writes.js';

export interface VolumeSpliceOptions {
  stateDir: string;
  dm: Pick<Dmsetup, 'exists' | 'create' | 'swap' | 'remove'> & Partial<Pick<Dmsetup, 'openCounts'>>;
  nbd: Pick<NbdNetlink, 'connect' | 'reconfigure' | 'disconnect'>;
  era: Pick<EraTracker, 'create' | 'reopen' | 'written' | 'remove'>;
  logger: Logger;
  /** Size of a block device in 512-byte sectors (blockdev --getsz). */
  sectorsOf?(device: string): Promise<number>;
  /** Drops the sidecar's cached pages of a block device (blockdev --flushbufs: BLKFLSBUF). */
  dropCache?(device: string): Promise<void>;
}

/** What the sidecar's pairs provide to a splice: the export and its dirty tracking. */
export interface SpliceExports {
  /** The primary pair exporting `device` over a Unix socket, with its block size. */
  exportOf(pair: string): SocketExport;
  /** Records writes the sidecar did not see, durably, as out of sync. */
  recordUntrackedWrites(pair: string, ranges: Array<[offset: number, length: number]>): Promise<void>;
  /** The pairs the sidecar holds. */
  pairNames(): string[];
}

export interface SpliceView {
  pv: string;
  device: string;
  state: SpliceRecord['state'];
  pair: string;
  dmDevice: string;
  nbdDevice: string;
  /** The top device's openers (valid with openCountKnown): the operator demotes its primary only at 0. */
  openCount: number;
  openCountKnown: boolean;
}

/**
 * The device-mapper splice of one node. Each volume is reached through a stable top
 * device, /dev/mapper/blockmirror-<pv>, a linear table that maps either the volume
 * itself (direct) or the tap. The tap, blockmirror-<pv>-tap, is a single-path multipath
 * device with queue_if_no_path over the kernel NBD device the sidecar serves: when the
 * sidecar dies, I/O waits in the NBD driver for a reconnect, and if none comes in time
 * it waits in the multipath queue instead of failing, until the tap is pointed at the
 * volume (through dm-era) and the queued I/O is issued there. A multipath table can only
 * be replaced by another multipath table, hence the linear top that can switch between
 * the tap and the volume.
 */
export class VolumeSplice {
  readonly #o: VolumeSpliceOptions;
  readonly #records: SpliceRecords;
  readonly #carried: CarriedWrites;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(o: VolumeSpliceOptions) {
    this.#o = o;
    this.#records = new SpliceRecords(o.stateDir);
    this.#carried = new CarriedWrites(this.#records.dir);
  }

  static topName(pv: string): string {
    return `blockmirror-${pv}`;
  }

  /** The device-mapper devices the splice of `pv` may stack on its volume. */
  static deviceNames(pv: string): string[] {
    return [VolumeSplice.topName(pv), tapName(pv), eraNameOf(pv)];
  }

  /** One operation at a time: every one of them is a sequence of table swaps. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Every staged volume, with its top device's open count when dmsetup could tell it. */
  async list(): Promise<SpliceView[]> {
    const records = await this.#records.list();
    const counts =
      records.length === 0 || this.#o.dm.openCounts === undefined
        ? undefined
        : await this.#o.dm.openCounts().catch((err: Error) => {
            // Unknown is said as such: the operator waits rather than guess 0.
            this.#o.logger.warn('could not read the open counts of the spliced devices', { error: err.message });
            return undefined;
          });
    return records.map((r) => {
      const n = counts?.get(VolumeSplice.topName(r.pv));
      return { ...view(r), ...(n !== undefined ? { openCount: n, openCountKnown: true } : {}) };
    });
  }

  async get(pv: string): Promise<SpliceView> {
    return view(await this.#record(pv));
  }

  async #record(pv: string): Promise<SpliceRecord> {
    const r = await this.#records.get(validatePvName(pv));
    if (r === null) throw new NotFoundError(`volume ${pv} is not staged through blockmirror`);
    return r;
  }

  /** Creates /dev/mapper/blockmirror-<pv> mapping `device` directly. Idempotent. */
  stage(pv: string, device: string): Promise<SpliceView> {
    return this.#serial(async () => {
      validatePvName(pv);
      const top = VolumeSplice.topName(pv);
      const existing = await this.#records.get(pv);
      if (existing !== null) {
        if (await this.#o.dm.exists(top)) {
          if (existing.device !== device) throw new AlreadyExistsError(`volume ${pv} is staged on ${existing.device}, not ${device}`);
          return view(existing);
        }
        // A crash between the record and the top device: finish the stage.
        if (existing.state === 'direct' && existing.device === device && existing.era !== undefined && (await this.#o.dm.exists(eraNameOf(pv)))) {
          await this.#o.dm.create(top, linear(existing.sectors, `/dev/mapper/${eraNameOf(pv)}`));
          return view(existing);
        }
        return view(await this.#restage(existing, device));
      }
      const sectors = await (this.#o.sectorsOf ?? sectorsOf)(device);
      // Staged volumes are mapped through dm-era from the start: a pair created later
      // copies the volume while the application writes to it directly, and at attach the
      // blocks written meanwhile are exactly what dm-era saw, not the whole volume.
      const r: SpliceRecord = { pv, device, sectors, state: 'direct' };
      r.era = await this.#createEra(r);
      // Recorded before the top device exists, so no write reaches the volume that a
      // restarted sidecar would not know to look up in dm-era.
      await this.#records.save(r);
      await this.#o.dm.create(top, linear(sectors, `/dev/mapper/${eraNameOf(pv)}`));
      this.#o.logger.info('volume staged', { pv, device, dm: `/dev/mapper/${top}` });
      return view(r);
    });
  }

  /**
   * A record whose devices the node lost: it restarted (device-mapper, loop and NBD
   * devices do not survive that), so nothing has reached the volume through them since,
   * and the volume may come back at another path. Staged afresh, direct, for the same
   * pair. The lost era device comes back over its metadata file with its marks (written
   * before the writes they cover completed), so the next attach finds them; if it cannot,
   * all of the volume is carried to that attach (see unstage). Writes that went through
   * the tap the pair marked itself, durably before writing them.
   */
  async #restage(r: SpliceRecord, device: string): Promise<SpliceRecord> {
    const pv = r.pv;
    const sectors = await (this.#o.sectorsOf ?? sectorsOf)(device);
    const next: SpliceRecord = { pv, device, sectors, state: 'direct', ...(r.pair !== undefined ? { pair: r.pair } : {}) };
    // The old loop device is never detached: its number may be another file's now.
    const kept =
      r.era === undefined
        ? undefined
        : await this.#reopenEra(next, r.era).catch((err: Error) => {
            this.#o.logger.warn("the lost dm-era device's metadata could not be opened: all of the volume is carried", { pv, error: err.message });
            return undefined;
          });
    // Unreadable marks are no marks, and a direct record without dm-era (an older
    // sidecar's) had none: all of the volume is out of sync, never none of it. Durable
    // before a fresh era device's metadata takes the old file's place. An attached record
    // without dm-era had its writes marked by the pair, through the tap.
    if (kept === undefined && (r.era !== undefined || r.state !== 'attached')) await this.#carried.add(pv, [[0, r.sectors * 512]], r.sectors * 512);
    next.era = kept ?? (await this.#createEra(next));
    await this.#records.save(next);
    await this.#o.dm.create(VolumeSplice.topName(pv), linear(sectors, `/dev/mapper/${eraNameOf(pv)}`));
    this.#o.logger.warn('volume staged again after the node lost its devices (a restart)', { pv, device, was: r.state, eraKept: kept !== undefined });
    return next;
  }

  /** The lost era device over its old metadata, on the volume as it is now. */
  async #reopenEra(r: SpliceRecord, era: NonNullable<SpliceRecord['era']>): Promise<NonNullable<SpliceRecord['era']>> {
    await this.#o.dm.remove(eraNameOf(r.pv));
    const loop = await this.#o.era.reopen(eraNameOf(r.pv), r.device, r.sectors, era.metaFile, era.blockBytes);
    return { loop, metaFile: era.metaFile, blockBytes: era.blockBytes };
  }

  /** The node restarted since the record was written: its top device is gone. */
  async #devicesLost(r: SpliceRecord): Promise<boolean> {
    return !(await this.#o.dm.exists(VolumeSplice.topName(r.pv)));
  }

  /**
   * Removes the top device; the volume must be detached. What dm-era saw is carried to
   * the next pair attached to a later staging of the volume (nothing is copied or lost).
   */
  unstage(pv: string, exports: Pick<SpliceExports, 'pairNames'>): Promise<void> {
    return this.#serial(async () => {
      const r = await this.#records.get(validatePvName(pv));
      if (r === null) return;
      if (r.state !== 'direct') throw new FailedPreconditionError(`volume ${pv} is ${r.state}: detach it first`);
      await this.#o.dm.remove(VolumeSplice.topName(pv));
      // No write reaches the era device now. What it saw since the stage or the last
      // detach no pair has: the paused pair resumed on a later staging, or a promoted
      // secondary's new primary on a first one (whose delta claims nobody wrote the volume
      // untracked), must find it out of sync. A pair it was detached from that is gone
      // takes nothing: it was a primary, recorded as one on its volume, so any pair created
      // over the volume later starts with a full copy.
      const carry = r.pair === undefined || exports.pairNames().includes(r.pair);
      // The era device is the only record, so it is kept durably before the device goes.
      // One already gone (a node restart, an unstage cut short) comes back over its
      // metadata file if that is still there; marks that cannot be read, or a record
      // without dm-era, carry all of the volume.
      const bytes = r.sectors * 512;
      let era = r.era !== undefined && (await this.#o.dm.exists(eraNameOf(pv))) ? r.era : undefined;
      if (carry) {
        if (era === undefined && r.era !== undefined) era = await this.#reopenEra(r, r.era).catch(() => undefined);
        await this.#carried.add(pv, era !== undefined ? await this.#eraWrites({ ...r, era }) : [[0, bytes]], bytes);
      }
      // A loop device not known to be the era device's is never detached: after a restart
      // its number may be another file's.
      if (r.era !== undefined) await this.#o.era.remove(eraNameOf(pv), era?.loop ?? '', r.era.metaFile);
      await this.#records.remove(pv);
      this.#o.logger.info('volume unstaged', { pv });
    });
  }

  /**
   * Puts the sidecar's export of the volume under the mounted filesystem, live. The
   * pair must be a primary on the same device with a Unix socket export.
   */
  attach(pv: string, pair: string, exports: SpliceExports): Promise<SpliceView> {
    return this.#serial(async () => {
      const r = await this.#record(pv);
      // Attached, but the writes dm-era saw not yet recorded (an attach cut short after its
      // record: a timeout, a stop): finish it, or they would never reach the secondary.
      if (r.state === 'attached' && r.pair === pair) return view(r.era ? await this.#finishAttach(r, exports) : r);
      if (r.state === 'direct' && r.pair !== undefined && r.pair !== pair) throw new FailedPreconditionError(`volume ${pv} was detached from pair ${r.pair ?? ''}; unstage it before attaching another pair`);
      if (r.state !== 'direct') throw new FailedPreconditionError(`volume ${pv} is ${r.state} (pair ${r.pair ?? ''})`);
      const ex = exports.exportOf(pair);
      if (ex.device !== r.device) throw new FailedPreconditionError(`pair ${pair} replicates ${ex.device}, volume ${pv} is ${r.device}`);
      const tap = tapName(pv);
      // A tap left by a crash between its creation and the record is stale: replace it.
      await this.#o.dm.remove(tap);
      const conn = await this.#o.nbd.connect(ex.socket, pair, backendOf(pv));
      await this.#o.dm.create(tap, multipath(r.sectors, `/dev/nbd${conn.index}`));
      // Recorded before the swap: from the swap on, a restarted sidecar must know the
      // volume's I/O runs through its export and reconnect the NBD device. The record
      // keeps dm-era until its writes are recorded out of sync: an attach cut short after
      // this point is finished by the next attach or the sidecar's recovery.
      const next: SpliceRecord = { ...r, state: 'attached', pair, socket: ex.socket, nbdIndex: conn.index };
      await this.#records.save(next);
      return view(await this.#finishAttach(next, exports));
    });
  }

  /**
   * The second half of an attach, safe to run again: the swap (the same table again is
   * harmless), then the writes dm-era saw recorded out of sync, then dm-era removed.
   */
  async #finishAttach(r: SpliceRecord, exports: SpliceExports): Promise<SpliceRecord> {
    const pv = r.pv;
    // Suspend lets I/O already issued to the volume complete, holds new I/O, and the
    // resume sends it through the tap: nothing reaches the volume behind the export's
    // back from here on, and nothing is unmounted. The sidecar's cached pages of the
    // device go while suspended, after the last direct write and before the first one
    // through the export: a write smaller than a page merged into a stale cached page
    // would write the stale rest back over what dm-era wrote (seen: a database's
    // committed WAL frame zeroed on the primary's own disk and so on the secondary).
    await this.#o.dm.swap(VolumeSplice.topName(pv), linear(r.sectors, `/dev/mapper/${tapName(pv)}`), { whileSuspended: () => this.#dropStaleCache(r.device) });
    // What reached the volume without the export is out of sync: the blocks dm-era saw
    // since the stage or the last detach (the pair may have copied a block that was then
    // written directly). A record without dm-era (staged by an older sidecar): anything.
    // And what earlier stagings of the volume left (see unstage).
    const untracked: ByteRanges = [...(r.era ? await this.#eraWrites(r) : [[0, r.sectors * 512] as [number, number]]), ...(await this.#carried.get(pv, r.sectors * 512))];
    await exports.recordUntrackedWrites(r.pair!, untracked);
    // Dropped only once the pair holds them durably: a crash before hands them over again.
    await this.#carried.drop(pv);
    const clean: SpliceRecord = { ...r };
    if (r.era) {
      delete clean.era;
      await this.#records.save(clean);
      await this.#o.era.remove(eraNameOf(pv), r.era.loop, r.era.metaFile);
    }
    this.#o.logger.info('replication attached', { pv, pair: r.pair, nbd: r.nbdIndex !== undefined ? `/dev/nbd${r.nbdIndex}` : '', untrackedBytes: untracked.reduce((n, [, l]) => n + l, 0) });
    return clean;
  }

  /** Takes the sidecar out of the data path, live; the volume stays staged. */
  detach(pv: string, exports: SpliceExports): Promise<SpliceView> {
    return this.#serial(async () => {
      let r = await this.#record(pv);
      if (r.state === 'direct') return view(r);
      // Writes made on the fallback path must be recorded before the era device goes.
      if (r.state === 'fallback') r = await this.#resume(r, exports);
      // While detached, the pair still exists and its secondary must not silently fall
      // behind: dm-era records the writes until the next attach. Recorded before the swap.
      const era = await this.#createEra(r);
      const next: SpliceRecord = { pv, device: r.device, sectors: r.sectors, state: 'direct', pair: r.pair!, era };
      await this.#records.save(next);
      // A plain suspend drains I/O in flight through the tap (and so through the export)
      // before the top device maps the volume (through the era device) again. While it is
      // suspended, the sidecar's writes still in the page cache of the device go to disk:
      // written back later, they would land over the newer ones made through dm-era.
      await this.#o.dm.swap(VolumeSplice.topName(pv), linear(r.sectors, `/dev/mapper/${eraNameOf(pv)}`), { whileSuspended: () => this.#dropStaleCache(r.device) });
      await this.#o.dm.remove(tapName(pv));
      if (r.nbdIndex !== undefined) await this.#o.nbd.disconnect(r.nbdIndex).catch((err: Error) => this.#o.logger.warn('NBD disconnect failed', { pv, error: err.message }));
      this.#o.logger.info('replication detached', { pv });
      return view(next);
    });
  }

  /**
   * After a sidecar start: hands every attached volume's NBD device a new socket (its
   * I/O has been waiting for one), or, if the kernel gave up on it, goes through the
   * fallback path; volumes on the fallback path are attached again and the writes
   * dm-era saw are recorded as out of sync.
   */
  recover(exports: SpliceExports): Promise<void> {
    return this.#serial(async () => {
      for (const r of await this.#records.list()) {
        try {
          if (r.state !== 'direct' && (await this.#devicesLost(r))) {
            // The node restarted: no device to reconnect or fall back, and no writer; the
            // kubelet's next stage sets the volume up again (#restage).
            this.#o.logger.warn('spliced volume lost its devices (the node restarted): set up again when the kubelet stages it', { pv: r.pv, state: r.state });
            continue;
          }
          if (r.state === 'attached') {
            await this.#reconnect(r, exports);
            // An attach cut short by the stop: its dm-era writes are recorded now.
            const cur = await this.#records.get(r.pv);
            if (cur?.state === 'attached' && cur.era) await this.#finishAttach(cur, exports);
          }
          else if (r.state === 'fallback') await this.#resume(r, exports);
        } catch (err) {
          this.#o.logger.error('could not recover a spliced volume', { pv: r.pv, state: r.state, error: (err as Error).message });
        }
      }
    });
  }

  /** The pairs whose exports carry a spliced volume's I/O. */
  async splicedPairs(): Promise<ReadonlySet<string>> {
    return new Set((await this.#records.list()).flatMap((r) => (r.state !== 'direct' && r.pair ? [r.pair] : [])));
  }

  /** A pair restarted in a running sidecar: its volumes' NBD devices get the new socket. */
  reconnectPair(pair: string, exports: SpliceExports): Promise<void> {
    return this.#serial(async () => {
      for (const r of await this.#records.list()) if (r.state === 'attached' && r.pair === pair) await this.#reconnect(r, exports);
    });
  }

  async #reconnect(r: SpliceRecord, exports: SpliceExports): Promise<void> {
    const ex = exports.exportOf(r.pair!);
    try {
      await this.#o.nbd.reconfigure(r.nbdIndex!, ex.socket, r.pair!, backendOf(r.pv));
      this.#o.logger.info('NBD device reconnected', { pv: r.pv, nbd: `/dev/nbd${r.nbdIndex}` });
      return;
    } catch (err) {
      this.#o.logger.warn('NBD device could not be reconnected: falling back', { pv: r.pv, error: (err as Error).message });
    }
    await this.#resume(await this.#fallback(r), exports);
  }

  /**
   * The sidecar is gone for longer than the application may wait: map the volume
   * through dm-era so I/O goes on and every write is still known afterwards. Needs no
   * running sidecar (the supervisor calls it).
   */
  fallbackAll(): Promise<void> {
    return this.#serial(async () => {
      for (const r of await this.#records.list()) if (r.state === 'attached' && !(await this.#devicesLost(r))) await this.#fallback(r);
    });
  }

  async #fallback(r: SpliceRecord): Promise<SpliceRecord> {
    const eraName = eraNameOf(r.pv);
    // Recorded before any write can reach the era device, so the writes it tracks are
    // never forgotten by a crash right after the swap.
    const next: SpliceRecord = { ...r, state: 'fallback', era: await this.#createEra(r) };
    await this.#records.save(next);
    // Fails the I/O waiting in the NBD driver now instead of at its dead-connection
    // timeout; the tap's queue_if_no_path keeps it queued, never failed to the app.
    if (r.nbdIndex !== undefined) await this.#o.nbd.disconnect(r.nbdIndex).catch(() => undefined);
    // noflush: the queued I/O moves to the new table instead of blocking the suspend.
    // While suspended, the dead sidecar's acknowledged writes still in the kernel's page
    // cache of the device go to disk first: the flusher writing them back later would
    // overwrite newer writes made through dm-era.
    await this.#o.dm.swap(tapName(r.pv), multipath(r.sectors, `/dev/mapper/${eraName}`), { noflush: true, whileSuspended: () => this.#dropStaleCache(r.device) });
    this.#o.logger.warn('volume on the fallback path: writes tracked by dm-era until the sidecar returns', { pv: r.pv });
    return next;
  }

  /** A fresh dm-era device over the volume (a stale one from a crash is replaced). */
  async #createEra(r: SpliceRecord): Promise<NonNullable<SpliceRecord['era']>> {
    await mkdir(this.#records.dir, { recursive: true });
    const metaFile = join(this.#records.dir, `${r.pv}.era`);
    const blockBytes = ERA_BLOCK_BYTES;
    await this.#o.dm.remove(eraNameOf(r.pv));
    const loop = await this.#o.era.create(eraNameOf(r.pv), r.device, r.sectors, metaFile, blockBytes);
    return { loop, metaFile, blockBytes };
  }

  /**
   * The sidecar reads and writes the device through the kernel's page cache of it, while
   * dm-era writes beneath that cache. `blockdev --flushbufs` writes the cache's dirty pages
   * back and drops the rest. Always while the device above is suspended, with no I/O in
   * flight. Leaving the export (detach, fallback): so no page written back later lands
   * over a newer write made through dm-era. Returning (attach, resume): so no page read
   * before a direct write is shipped to the secondary as that block's bytes, nor has a
   * write through the export merged into it and written back with it.
   */
  async #dropStaleCache(device: string): Promise<void> {
    await (this.#o.dropCache ?? dropCache)(device);
  }

  /** The byte ranges dm-era saw written; the era device must have no I/O left. */
  async #eraWrites(r: SpliceRecord): Promise<ByteRanges> {
    const era = r.era!;
    const written = await this.#o.era.written(eraNameOf(r.pv), era.loop, era.blockBytes);
    const end = r.sectors * 512;
    return written.ranges.map(([a, b]): [number, number] => [a * written.blockBytes, Math.min(b * written.blockBytes, end) - a * written.blockBytes]);
  }

  async #resume(r: SpliceRecord, exports: SpliceExports): Promise<SpliceRecord> {
    const ex = exports.exportOf(r.pair!);
    const conn = await this.#o.nbd.connect(ex.socket, r.pair!, backendOf(r.pv));
    await this.#records.save({ ...r, nbdIndex: conn.index });
    // Back through the export first: from here on the sidecar tracks every new write,
    // so the era device's record below is complete once the swap is done.
    // The stale cache goes while suspended, as in an attach.
    await this.#o.dm.swap(tapName(r.pv), multipath(r.sectors, `/dev/nbd${conn.index}`), { noflush: true, whileSuspended: () => this.#dropStaleCache(r.device) });
    const era = r.era!;
    const ranges = await this.#eraWrites(r);
    // Durably out of sync before the era device (the only record of these writes) goes.
    await exports.recordUntrackedWrites(r.pair!, ranges);
    const next: SpliceRecord = { pv: r.pv, device: r.device, sectors: r.sectors, state: 'attached', pair: r.pair!, socket: ex.socket, nbdIndex: conn.index };
    await this.#records.save(next);
    await this.#o.era.remove(eraNameOf(r.pv), era.loop, era.metaFile);
    const bytes = ranges.reduce((s, [, n]) => s + n, 0);
    this.#o.logger.info('replication attached again after the fallback path', { pv: r.pv, untrackedBytes: bytes, nbd: `/dev/nbd${conn.index}` });
    return next;
  }
}

function eraNameOf(pv: string): string {
  return `${VolumeSplice.topName(pv)}-era`;
}

function tapName(pv: string): string {
  return `${VolumeSplice.topName(pv)}-tap`;
}

function backendOf(pv: string): string {
  return `blockmirror:${pv}`;
}

/** dm-era's tracking granularity: coarse enough for a small bitmap, fine enough to resync little. */
const ERA_BLOCK_BYTES = 64 * 1024;

function linear(sectors: number, device: string): string {
  return `0 ${sectors} linear ${device} 0`;
}

/** Bio-based single path, queue_if_no_path: a failed path queues I/O, never fails it. */
function multipath(sectors: number, device: string): string {
  return `0 ${sectors} multipath 3 queue_if_no_path queue_mode bio 0 1 1 round-robin 0 1 0 ${device}`;
}

async function dropCache(device: string): Promise<void> {
  await runTool('blockdev', ['--flushbufs', device]);
}

async function sectorsOf(device: string): Promise<number> {
  return Number((await runTool('blockdev', ['--getsz', device])).trim());
}

function view(r: SpliceRecord): SpliceView {
  return {
    pv: r.pv,
    device: r.device,
    state: r.state,
    pair: r.pair ?? '',
    dmDevice: `/dev/mapper/${VolumeSplice.topName(r.pv)}`,
    nbdDevice: r.state === 'attached' && r.nbdIndex !== undefined ? `/dev/nbd${r.nbdIndex}` : '',
    openCount: 0,
    openCountKnown: false,
  };
}
