import { describe, expect, it } from '@jest/globals';
import { decideResync, discardPlan, type ResyncDecision } from './decide-resync.js';
import { adopted, coveredBy, lineageOf, rotated, type GenerationIds } from './generation-ids.js';
import { handshakeVerdict, type Responder } from './handshake-verdict.js';

/** `c`, `c/b`, `c/b:h1,h2` or `c:h1,h2`: current, bitmap, history (newest first); '-' no image. */
function g(s: string): GenerationIds {
  if (s === '-') return { current: '', bitmap: '', history: [] };
  const [head, hist = ''] = s.split(':');
  const [current = '', bitmap = ''] = head!.split('/');
  return { current, bitmap, history: hist === '' ? [] : hist.split(',') };
}

function show(d: ResyncDecision): string {
  switch (d.kind) {
    case 'same':
    case 'unrelated':
      return d.kind;
    case 'full':
      return `full from ${d.from}`;
    case 'delta':
      return `delta from ${d.from} (since ${d.common})`;
    case 'split-brain':
      return `split brain (since ${d.common})`;
  }
}

describe('decideResync: every kind of pair of generation ids', () => {
  // [what happened, A's ids, B's ids, decision]
  const table: [string, string, string, string][] = [
    ['neither side holds an image yet', '-', '-', 'full from either'],
    ['a new secondary', 'g1', '-', 'full from a'],
    ['a new secondary, seen from its side', '-', 'g1', 'full from b'],
    ['in sync: the same generation', 'g1', 'g1', 'same'],
    ['in sync after earlier failovers', 'g3:g2,g1', 'g3:g2,g1', 'same'],
    ['A wrote during an outage (rotated), B holds where A was', 'g2/g1:g1', 'g1', 'delta from a (since g1)'],
    ['the same, seen from B', 'g1', 'g2/g1:g1', 'delta from b (since g1)'],
    ['B promoted after A crashed; A never wrote alone', 'g1:g0', 'g3/g1:g1,g0', 'delta from b (since g1)'],
    ['B promoted twice (demoted in between with data unshipped)', 'g1', 'g4/g1:g3,g1', 'delta from b (since g1)'],
    ['B holds a generation between A\'s bitmap and current', 'g3/g1:g2,g1', 'g2:g1', 'delta from a (since g2)'],
    ['B holds a generation older than A\'s bitmap', 'g3/g2:g2,g1', 'g1', 'full from a'],
    ['B holds an ancestor A no longer tracks (no bitmap)', 'g2:g1', 'g1', 'full from a'],
    ['A behind beyond B\'s bitmap', 'g0', 'g3/g1:g1,g0', 'full from b'],
    ['split brain: A wrote alone, B was promoted', 'g2/g1:g1', 'g3/g1:g1', 'split brain (since g1)'],
    ['split brain from an older common generation', 'g4/g2:g2,g1', 'g3/g1:g1', 'split brain (since g1)'],
    ['split brain without bitmaps (logs lost)', 'g2:g1', 'g3:g1', 'split brain (since g1)'],
    ['unrelated: recreated on both sides', 'g1', 'g9', 'unrelated'],
    ['unrelated with histories', 'g2/g1:g1', 'g4/g3:g3', 'unrelated'],
  ];
  it.each(table)('%s: A %s, B %s -> %s', (_what, a, b, want) => {
    expect(show(decideResync(g(a), g(b)))).toBe(want);
  });

  // Every combination over a small universe: lineages built only as the sidecar builds
  // them (rotations and adoptions), compared both ways.
  const universe = ((): GenerationIds[] => {
    const out: GenerationIds[] = [g('-')];
    const seen = new Set<string>(['-']);
    const add = (x: GenerationIds): void => {
      const key = `${x.current}/${x.bitmap}:${x.history.join(',')}`;
      if (seen.has(key) || x.history.length > 4) return;
      seen.add(key);
      out.push(x);
    };
    let n = 0;
    for (let round = 0; round < 5; round++) {
      for (const x of [...out]) {
        add(rotated(x, `r${n++}`));
        if (x.current !== '') add(adopted(x));
      }
    }
    add(g('u1'));
    add(g('u2/u1:u1'));
    return out;
  })();

  it(`decides every pair of ${universe.length} lineages consistently, both ways`, () => {
    const mirror = (d: ResyncDecision): ResyncDecision => ('from' in d && d.from !== 'either' ? { ...d, from: d.from === 'a' ? 'b' : 'a' } : d);
    let checked = 0;
    const kinds = new Set<string>();
    for (const a of universe) {
      for (const b of universe) {
        const d = decideResync(a, b);
        kinds.add(d.kind);
        const ctx = { a, b, d: show(d) };
        // The same answer from the other side.
        expect({ ...ctx, back: decideResync(b, a) }).toEqual({ ...ctx, back: mirror(d) });
        const [src, dst] = 'from' in d && d.from === 'b' ? [b, a] : [a, b];
        switch (d.kind) {
          case 'same':
            expect(a.current !== '' && a.current === b.current).toBe(true);
            break;
          case 'delta':
            // Only from a generation the source's dirty log covers.
            expect({ ...ctx, covered: coveredBy(src).includes(dst.current) }).toEqual({ ...ctx, covered: true });
            break;
          case 'full':
            if (d.from !== 'either' && dst.current !== '') expect({ ...ctx, ancestor: lineageOf(src).includes(dst.current), covered: coveredBy(src).includes(dst.current) }).toEqual({ ...ctx, ancestor: true, covered: false });
            break;
          case 'split-brain':
            // Both wrote since a common generation: neither current is in the other's lineage.
            expect(lineageOf(a).includes(b.current) || lineageOf(b).includes(a.current)).toBe(false);
            expect(lineageOf(a).includes(d.common) && lineageOf(b).includes(d.common)).toBe(true);
            break;
          case 'unrelated':
            expect(lineageOf(a).filter((x) => lineageOf(b).includes(x))).toEqual([]);
            break;
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(400);
    // The universe is rich enough to reach every kind of decision.
    expect([...kinds].sort()).toEqual(['delta', 'full', 'same', 'split-brain', 'unrelated']);
  });
});

describe('discardPlan: the loser of a split brain is overwritten by a delta only when both logs cover the common generation', () => {
  const table: [string, string, string, 'delta' | 'full'][] = [
    ['both bitmaps at the common generation', 'g3/g1:g1', 'g2/g1:g1', 'delta'],
    ['the target did not write (it was only behind)', 'g3/g1:g1', 'g1', 'delta'],
    ['the target\'s bitmap is newer than the common generation', 'g3/g1:g1', 'g4/g2:g2,g1', 'full'],
    ['the source\'s log does not cover the common generation', 'g3:g1', 'g2/g1:g1', 'full'],
    ['unrelated lineages', 'g1', 'g9', 'full'],
    ['the target holds no image', 'g1', '-', 'full'],
  ];
  it.each(table)('%s: source %s, target %s -> %s', (_what, source, target, want) => {
    expect(discardPlan(g(source), g(target))).toBe(want);
  });
});

describe('handshakeVerdict: what the answering side does with a primary\'s handshake', () => {
  const side = (role: 'primary' | 'secondary', ids: string, discardMyData = false): Responder => ({ role, generations: g(ids), discardMyData });
  const brief = (v: ReturnType<typeof handshakeVerdict>): string => (v.kind === 'session' ? `session ${v.full ? 'full' : 'delta'}` : v.kind === 'refuse' ? `refuse ${v.verdict}` : 'demote-self');
  // [what happened, the answering side, the dialling primary's ids, verdict]
  const table: [string, Responder, string, string][] = [
    ['a new secondary', side('secondary', '-'), 'g1', 'session full'],
    ['a secondary in sync', side('secondary', 'g1'), 'g1', 'session delta'],
    ['the primary wrote during an outage', side('secondary', 'g1'), 'g2/g1:g1', 'session delta'],
    ['the primary lost track of the secondary\'s generation', side('secondary', 'g1'), 'g3/g2:g2,g1', 'session full'],
    ['the secondary is newer (it was promoted and demoted): the primary is stale', side('secondary', 'g3/g1:g1'), 'g1', 'refuse dialer-stale'],
    ['split brain at a secondary', side('secondary', 'g2/g1:g1'), 'g3/g1:g1', 'refuse split-brain'],
    ['split brain, the secondary discards its data', side('secondary', 'g2/g1:g1', true), 'g3/g1:g1', 'session delta'],
    ['unrelated data at a secondary', side('secondary', 'g9'), 'g1', 'refuse unrelated'],
    ['unrelated data the secondary discards', side('secondary', 'g9', true), 'g1', 'session full'],
    ['a returning old primary, dialled by the promoted one', side('primary', 'g1'), 'g3/g1:g1', 'demote-self'],
    ['a promoted primary, dialled by the returning old one', side('primary', 'g3/g1:g1'), 'g1', 'refuse dialer-stale'],
    ['two primaries of one generation', side('primary', 'g1'), 'g1', 'refuse split-brain'],
    ['split brain between two primaries', side('primary', 'g2/g1:g1'), 'g3/g1:g1', 'refuse split-brain'],
    ['a primary that names no generation', side('secondary', 'g1'), '-', 'refuse unrelated'],
  ];
  it.each(table)('%s', (_what, me, dialer, want) => {
    expect(brief(handshakeVerdict(me, g(dialer)))).toBe(want);
  });

  it('names both sides\' generations and the common one in a split brain', () => {
    const v = handshakeVerdict(side('primary', 'g2/g1:g1'), g('g3/g1:g1'));
    expect(v.kind === 'refuse' && v.reason).toMatch(/since generation g1: the primary holds g3 .*this side \(primary\) holds g2/);
  });
});
