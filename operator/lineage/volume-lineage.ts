import type { PairJson } from '../../sidecar/control/pair-json.js';
import { lineageRecordOf, parseLineageRecord } from '../../sidecar/control/lineage-record.js';
import { BlockmirrorError } from '../../sidecar/errors.js';
import type { VolumeLineage } from '../../sidecar/replication/lineage/continue-lineage.js';

/**
 * The PersistentVolume annotation that keeps a volume's data lineage once its pair is
 * gone: the PV is the volume, and outlives the pair, its sidecar's state dir and its node.
 * Its value is the JSON of a VolumeLineage ({"role","generation","history","consistent"}).
 */
export const LINEAGE_ANNOTATION = 'blockmirror.io/lineage';

/** What the store needs of the API (KubeClient has both). */
export interface VolumeAnnotations {
  getVolume(name: string): Promise<{ annotations?: Record<string, string> } | undefined>;
  patchVolumeAnnotations(name: string, annotations: Record<string, string | null>): Promise<void>;
}

/** The annotation is there but not a lineage: a person must fix or remove it. */
export class LineageAnnotationError extends BlockmirrorError {
  constructor(pv: string, why: string, options?: { cause?: unknown }) {
    super('INVALID_ARGUMENT', `PersistentVolume ${pv}: annotation ${LINEAGE_ANNOTATION} is not a data lineage (${why}); fix it, or remove it to treat the volume's data as a new lineage`, options);
    this.name = 'LineageAnnotationError';
  }
}

/**
 * Reads and writes the lineage kept on PersistentVolumes. While a pair runs, `keep` holds
 * the record in step with it (see liveLineage). The finalizer records it in two
 * steps around the sidecar's DeletePair, so that a failure at any point leaves a record
 * that is safe to continue from (never one claiming more than the volume holds):
 * `recordDeleting` before (from the last status, never "consistent" for a secondary: a
 * resync may start before the pair stops), then `record` with what DeletePair answered.
 */
export class VolumeLineageStore {
  readonly #api: VolumeAnnotations;
  /** The annotation as this store last wrote or read it, per PV ('' none): `keep` reads the PV only when it changes. */
  readonly #known = new Map<string, string>();

  constructor(api: VolumeAnnotations) {
    this.#api = api;
  }

  /** The lineage kept on the volume; undefined without one (or without the PV). */
  async read(pv: string): Promise<VolumeLineage | undefined> {
    const text = (await this.#api.getVolume(pv))?.annotations?.[LINEAGE_ANNOTATION];
    if (text === undefined) return undefined;
    try {
      return parseLineageRecord(text);
    } catch (err) {
      throw new LineageAnnotationError(pv, (err as Error).message.replace(/^lineage: /, ''), { cause: err });
    }
  }

  /**
   * Before the pair is deleted on its sidecar: what its last status says, with a
   * secondary marked mid-resync (a resync may start before it stops). Nothing to record
   * without a complete image: an earlier record stays.
   */
  async recordDeleting(pv: string, pair: PairJson): Promise<void> {
    const l = lineageRecordOf(pair);
    if (l === null) return;
    await this.#write(pv, l.role === 'secondary' ? { ...l, consistent: false } : l);
  }

  /** What DeletePair answered, read once the pair had stopped (null: keep the earlier record). */
  async record(pv: string, lineage: VolumeLineage | null): Promise<void> {
    if (lineage === null) return;
    await this.#write(pv, lineage);
  }

  /**
   * Keeps the record in step with the running pair (see liveLineage): a patch only when it
   * differs from what the PV carries, so a steady pair costs no write (nor, once known, a
   * read). Answers whether it wrote.
   */
  async keep(pv: string, lineage: VolumeLineage | null): Promise<boolean> {
    if (lineage === null) return false;
    const value = lineageText(lineage);
    if (this.#known.get(pv) === value) return false;
    const volume = await this.#api.getVolume(pv);
    // No PV (gone): nothing to keep, and no patch bound to fail each pass.
    if (volume === undefined) return false;
    const now = volume.annotations?.[LINEAGE_ANNOTATION] ?? '';
    if (now === value) {
      this.#known.set(pv, value);
      return false;
    }
    await this.#write(pv, lineage);
    return true;
  }

  /**
   * The record goes, so that the next pair over the volume starts a lineage of its own
   * (a full copy): before the operator deletes a pair that it recreates without
   * continuing it (a CSI volume's wiring change). Always safe: no record claims nothing.
   */
  async forget(pv: string): Promise<void> {
    try {
      this.#known.delete(pv);
      await this.#api.patchVolumeAnnotations(pv, { [LINEAGE_ANNOTATION]: null });
      this.#known.set(pv, '');
    } catch (err) {
      if ((err as { status?: number }).status !== 404) throw err;
    }
  }

  async #write(pv: string, l: VolumeLineage): Promise<void> {
    const value = lineageText(l);
    // Unknown until the patch answers: a failed one may or may not have landed.
    this.#known.delete(pv);
    try {
      await this.#api.patchVolumeAnnotations(pv, { [LINEAGE_ANNOTATION]: value });
      this.#known.set(pv, value);
    } catch (err) {
      // The volume itself is gone: there is nothing left to continue.
      if ((err as { status?: number }).status !== 404) throw err;
    }
  }
}

/** The annotation's value: the fields in one order, so equal lineages compare equal as text. */
function lineageText(l: VolumeLineage): string {
  const value: VolumeLineage = { role: l.role, generation: l.generation, history: [...l.history], consistent: l.consistent, ...(l.promotion !== undefined ? { promotion: l.promotion } : {}) };
  return JSON.stringify(value);
}
