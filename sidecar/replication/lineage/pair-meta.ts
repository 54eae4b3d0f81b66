import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StateCorruptError } from '../../errors.js';
import { writeFileAtomic } from '../../fs/write-file-atomic.js';
import { continueLineage, type VolumeLineage } from './continue-lineage.js';
import { adopted, newGeneration, rotated, validGenerations, type GenerationIds } from './generation-ids.js';
import type { SideRole } from './handshake-verdict.js';

/**
 * What one side of a pair keeps in STATE_DIR/pairs/NAME/meta.json: its role and its
 * data-generation ids (generation-ids.ts), changed together in one atomic write — the
 * commit point of every role change — and the bookkeeping of copies.
 */
export interface PairMetaData extends GenerationIds {
  role: SideRole;
  /**
   * The peer may hold `current` (it confirmed a copy or resync of it, or is being told
   * it does): before this side acknowledges a write its peer did not get, it must take
   * a new current generation, so that the two lineages can be told apart later.
   */
  shared: boolean;
  /** This volume image's id: a full copy directed at it resumes across sessions. */
  image: string;
  /** Primary: the peer image a full copy under way writes to ('' none). */
  fullSyncTarget: string;
  /** Primary: the peer image it last completed a full copy to ('' never). */
  peerImage: string;
  /** Sent to primaries and secondaries of the previous release as the primary's generation. */
  root: string;
  /** Secondary: a resync is writing the volume in block order: it is at no point in time. */
  inconsistent: boolean;
  /** Secondary: its primary demoted itself with everything shipped here. */
  primaryDemoted: boolean;
  /** DiscardMyData was asked: the next primary's data overwrites this side's. */
  discardMyData: boolean;
  promotedAtMs: number;
  /** At the last promotion, the primary time of the point the volume held (0 unknown). */
  promotedPointMs: number;
}

/** The file: version 2, plus the two fields the previous release reads (a downgrade). */
interface MetaFileV2 extends PairMetaData {
  version: 2;
  generation: string;
  syncedPeerGeneration: string;
}

/** What load() found on disk. */
export type MetaOrigin = 'none' | 'legacy' | 'current';

export class PairMeta {
  readonly #file: string;
  #data: PairMetaData;
  #origin: MetaOrigin;
  #written: boolean;
  /** Updates run one at a time, each from the data the previous one left. */
  #queue: Promise<unknown> = Promise.resolve();
  #diverging: Promise<void> | null = null;

  private constructor(file: string, data: PairMetaData, origin: MetaOrigin) {
    this.#file = file;
    this.#data = data;
    this.#origin = origin;
    this.#written = origin === 'current';
  }

  /**
   * Reads a pair's metadata, or makes it for a new pair of `role`, without writing
   * anything (persist() does). A file of the previous release (`generation`,
   * `syncedPeerGeneration`, `fullSyncTarget`, read by role) is converted: a primary's
   * generation becomes its current one, a secondary's synced one its current one.
   * The role of a version 2 file is the pair's role, whatever `role` says. A new pair
   * given its volume's `lineage` continues it (continueLineage); a pair with a file
   * ignores it: its own metadata knows better than a record made when an earlier pair
   * was deleted.
   */
  static async load(pairStateDir: string, role: SideRole, lineage?: VolumeLineage): Promise<PairMeta> {
    const file = join(pairStateDir, 'meta.json');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StateCorruptError(`${file}: ${(err as Error).message}`, { cause: err });
      return new PairMeta(file, lineage === undefined ? fresh(role) : continued(role, lineage), 'none');
    }
    try {
      const parsed = JSON.parse(text) as Record<string, unknown>;
      if (parsed.version === 2) return new PairMeta(file, parseV2(parsed), 'current');
      return new PairMeta(file, fromLegacy(parsed, role), 'legacy');
    } catch (err) {
      throw new StateCorruptError(`${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** load() and persist(): for callers that need the file to exist now. */
  static async open(pairStateDir: string, role: SideRole, lineage?: VolumeLineage): Promise<PairMeta> {
    const m = await PairMeta.load(pairStateDir, role, lineage);
    await m.persist();
    return m;
  }

  /** Writes the file if it is not on disk in this version yet (a new pair, a converted one). */
  persist(): Promise<void> {
    return this.#update(() => ({}));
  }

  get origin(): MetaOrigin {
    return this.#origin;
  }

  get data(): Readonly<PairMetaData> {
    return this.#data;
  }

  get role(): SideRole {
    return this.#data.role;
  }

  get generations(): GenerationIds {
    const { current, bitmap, history } = this.#data;
    return { current, bitmap, history };
  }

  get current(): string {
    return this.#data.current;
  }

  /**
   * What to keep with the volume when the pair goes (continueLineage takes it back); null
   * without a complete image. Only a secondary can be mid-resync: a primary's volume is
   * its data.
   */
  get lineage(): VolumeLineage | null {
    const d = this.#data;
    if (d.current === '') return null;
    return { role: d.role, generation: d.current, history: [...d.history], consistent: d.role === 'primary' || !d.inconsistent };
  }

  get image(): string {
    return this.#data.image;
  }

  get fullSyncTarget(): string {
    return this.#data.fullSyncTarget;
  }

  get peerImage(): string {
    return this.#data.peerImage;
  }

  get root(): string {
    return this.#data.root;
  }

  async setFullSyncTarget(image: string): Promise<void> {
    await this.#update(() => ({ fullSyncTarget: image }));
  }

  /** A full copy to `image` completed (the peer recorded it). */
  async setPeerImage(image: string): Promise<void> {
    await this.#update(() => ({ peerImage: image }));
  }

  /**
   * Before this primary acknowledges a write its peer did not get: when the peer may hold
   * the current generation, a new one is taken and made durable first — a write
   * acknowledged under a generation the peer also holds could later be overwritten by the
   * peer's data without anyone seeing a split brain. Undefined when nothing is to be done
   * (the common case costs no promise). Rejects when the file cannot be written: the write
   * must then fail, not be acknowledged.
   */
  diverge(): Promise<void> | undefined {
    if (this.#diverging !== null) return this.#diverging;
    if (!this.#data.shared) return undefined;
    this.#diverging = this.#update((d) => (d.shared ? { ...rotated(d), shared: false } : {})).finally(() => {
      this.#diverging = null;
    });
    return this.#diverging;
  }

  /**
   * Before telling the secondary it holds our current generation: from now on a write it
   * does not get takes a new one (durable before the secondary is told, so a crash in
   * between cannot leave it holding our generation while we write under it alone).
   */
  async markShared(): Promise<void> {
    await this.#update((d) => (d.shared ? {} : { shared: true }));
  }

  /**
   * The secondary confirmed it holds `sent`: the dirty log no longer needs to reach back
   * further (or, if a new generation was taken meanwhile, only back to `sent`).
   */
  async peerAdopted(sent: string): Promise<void> {
    await this.#update((d) => (d.current === sent ? { bitmap: '' } : d.history.includes(sent) ? { bitmap: sent } : {}));
  }

  /** Secondary: a copy or resync of `source` is complete and durable here. */
  async adopt(source: GenerationIds, opts: { primaryDemoted: boolean }): Promise<void> {
    await this.#update(() => ({ ...adopted(source), inconsistent: false, discardMyData: false, primaryDemoted: opts.primaryDemoted }));
  }

  /** Secondary: a resync starts writing blocks out of order; durable before the first one lands. */
  async setInconsistent(): Promise<void> {
    await this.#update((d) => (d.inconsistent ? {} : { inconsistent: true }));
  }

  /** Secondary: a primary is back (a new session): it may write again. */
  async clearPrimaryDemoted(): Promise<void> {
    await this.#update((d) => (d.primaryDemoted ? { primaryDemoted: false } : {}));
  }

  /** Becomes a primary: a new current generation, this side's own writes tracked from here. */
  async promote(opts: { nowMs: number; pointMs: number }): Promise<void> {
    await this.#update((d) => {
      const g = rotated(d);
      return { ...g, role: 'primary', shared: false, discardMyData: false, primaryDemoted: false, fullSyncTarget: '', peerImage: '', root: d.root || g.current, promotedAtMs: opts.nowMs, promotedPointMs: opts.pointMs };
    });
  }

  /** Becomes a secondary, keeping the generation and the dirty log (its divergent blocks). */
  async demote(opts: { discardMyData?: boolean } = {}): Promise<void> {
    await this.#update((d) => ({ role: 'secondary', primaryDemoted: false, inconsistent: false, discardMyData: opts.discardMyData ?? d.discardMyData }));
  }

  /** The next primary's data overwrites this side's (see discardPlan). */
  async setDiscardMyData(): Promise<void> {
    await this.#update((d) => (d.discardMyData ? {} : { discardMyData: true }));
  }

  #update(change: (d: PairMetaData) => Partial<PairMetaData>): Promise<void> {
    const run = this.#queue.then(async () => {
      const next = { ...this.#data, ...change(this.#data) };
      if (this.#written && JSON.stringify(next) === JSON.stringify(this.#data)) return;
      // Memory follows the disk: a write that failed (a full disk) must not leave this
      // side believing — and telling its peer — what a restart would not find.
      await writeFileAtomic(this.#file, JSON.stringify(toFile(next)) + '\n');
      this.#data = next;
      this.#written = true;
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

function fresh(role: SideRole): PairMetaData {
  const current = role === 'primary' ? newGeneration() : '';
  return {
    role,
    current,
    bitmap: '',
    history: [],
    shared: false,
    image: newGeneration(),
    fullSyncTarget: '',
    peerImage: '',
    root: current,
    inconsistent: false,
    primaryDemoted: false,
    discardMyData: false,
    promotedAtMs: 0,
    promotedPointMs: 0,
  };
}

/** A new pair over a volume that carries a lineage (see continueLineage). */
function continued(role: SideRole, lineage: VolumeLineage): PairMetaData {
  const c = continueLineage(role, lineage);
  const base = fresh(role);
  // root: what a secondary of the previous release is told; a secondary's is never sent.
  return { ...base, ...c.generations, history: [...c.generations.history], root: role === 'primary' ? c.generations.current : '', inconsistent: c.inconsistent };
}

/**
 * The previous release's file: `generation` was a primary's lineage (which it sent to its
 * secondary) and a secondary's image id; `syncedPeerGeneration` the secondary image a
 * primary completed a copy to, and the primary generation a secondary held a copy of.
 */
function fromLegacy(p: Record<string, unknown>, role: SideRole): PairMetaData {
  if (typeof p.generation !== 'string' || typeof p.syncedPeerGeneration !== 'string') throw new Error('missing fields');
  const base = fresh(role);
  if (role === 'primary') {
    // Its secondary may hold this generation (once a copy completed): a write it does not
    // get must start a new one.
    const fullSyncTarget = typeof p.fullSyncTarget === 'string' ? p.fullSyncTarget : '';
    return { ...base, current: p.generation, root: p.generation, peerImage: p.syncedPeerGeneration, fullSyncTarget, shared: p.syncedPeerGeneration !== '' };
  }
  return { ...base, current: p.syncedPeerGeneration, image: p.generation };
}

function parseV2(p: Record<string, unknown>): PairMetaData {
  const g = validGenerations(p);
  if (typeof g === 'string') throw new Error(g);
  if (p.role !== 'primary' && p.role !== 'secondary') throw new Error(`role ${JSON.stringify(p.role)}`);
  const str = (k: string): string => {
    if (typeof p[k] !== 'string') throw new Error(`${k} must be a string`);
    return p[k];
  };
  const bool = (k: string): boolean => {
    if (typeof p[k] !== 'boolean') throw new Error(`${k} must be true or false`);
    return p[k];
  };
  const num = (k: string): number => {
    if (typeof p[k] !== 'number' || !Number.isFinite(p[k])) throw new Error(`${k} must be a number`);
    return p[k];
  };
  return {
    ...g,
    history: [...g.history],
    role: p.role,
    shared: bool('shared'),
    image: str('image'),
    fullSyncTarget: str('fullSyncTarget'),
    peerImage: str('peerImage'),
    root: str('root'),
    inconsistent: bool('inconsistent'),
    primaryDemoted: bool('primaryDemoted'),
    discardMyData: bool('discardMyData'),
    promotedAtMs: num('promotedAtMs'),
    promotedPointMs: num('promotedPointMs'),
  };
}

function toFile(d: PairMetaData): MetaFileV2 {
  // What the previous release would read back, for its role (see fromLegacy).
  const legacy = d.role === 'primary' ? { generation: d.root || d.current, syncedPeerGeneration: d.peerImage } : { generation: d.image, syncedPeerGeneration: d.current };
  return { version: 2, ...d, ...legacy };
}
