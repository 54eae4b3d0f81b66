/** A run of a frame being sent (BlockRun). */
interface Run {
  offset: number;
  length: number;
  zero?: boolean;
}

/** The part of a frame that goes to one lane: its runs and the payload they carry. */
export interface LanePart {
  lane: number;
  runs: Run[];
  payload: Buffer[];
}

/**
 * Cuts a frame's runs at every `extent` boundary and gives each piece to lane
 * (offset / extent) mod `lanes`; consecutive pieces of the same lane stay one part.
 * Payload chunks are cut as views, never copied. A frame within one extent is one part.
 */
export function laneParts(frame: { runs: readonly Run[]; payload: Buffer | readonly Buffer[] }, lanes: number, extent: number): LanePart[] {
  const chunks = Buffer.isBuffer(frame.payload) ? [frame.payload] : frame.payload;
  let chunk = 0;
  let inChunk = 0;
  /** The next `n` payload bytes, as views of the chunks. */
  const take = (n: number, into: Buffer[]): void => {
    while (n > 0) {
      const c = chunks[chunk];
      if (c === undefined) throw new RangeError('the runs describe more data than the payload holds');
      const k = Math.min(n, c.length - inChunk);
      if (k > 0) into.push(k === c.length ? c : c.subarray(inChunk, inChunk + k));
      inChunk += k;
      n -= k;
      if (inChunk === c.length) {
        chunk++;
        inChunk = 0;
      }
    }
  };
  const parts: LanePart[] = [];
  for (const r of frame.runs) {
    let at = r.offset;
    const end = r.offset + r.length;
    while (at < end) {
      const cut = Math.min(end, (Math.floor(at / extent) + 1) * extent);
      const lane = Math.floor(at / extent) % lanes;
      let part = parts.at(-1);
      if (part === undefined || part.lane !== lane) {
        part = { lane, runs: [], payload: [] };
        parts.push(part);
      }
      const last = part.runs.at(-1);
      const zero = r.zero === true;
      // A run cut only to be given back to the same lane is joined again.
      if (last !== undefined && (last.zero === true) === zero && last.offset + last.length === at) last.length += cut - at;
      else part.runs.push(zero ? { offset: at, length: cut - at, zero: true } : { offset: at, length: cut - at });
      if (!zero) take(cut - at, part.payload);
      at = cut;
    }
  }
  return parts;
}

/**
 * The lane of a frame whose runs all lie in extents of one lane (laneParts would give it
 * whole), or -1 when it must be cut. No allocation: this is asked of every write.
 */
export function soleLane(runs: readonly Run[], lanes: number, extent: number): number {
  let lane = -1;
  for (const r of runs) {
    if (r.length === 0) continue;
    const first = Math.floor(r.offset / extent);
    if (first !== Math.floor((r.offset + r.length - 1) / extent) && lanes > 1) return -1;
    const l = first % lanes;
    if (lane !== -1 && l !== lane) return -1;
    lane = l;
  }
  return lane;
}
