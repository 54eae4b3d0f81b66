// Property-based fuzzing of the secondary's peer handshake with primaries of the previous
// release (their generation only; decide-resync.test.ts covers generation ids): random
// sequences of handshakes (geometry and generations right, nearly right or wrong), MarkSynced calls
// and restarts, checked against the rules: a primary is accepted only with the
// secondary's geometry and a generation that cannot overwrite another lineage's data,
// else refused with a typed error that changes nothing. Replay a failure with the
// command the report prints (test/helpers/fuzz.ts).
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { join } from 'node:path';
import winston from 'winston';
import { fuzz } from '../../../test/helpers/fuzz.js';
import { openSecondaryEndpoint } from '../../../test/helpers/open-secondary-endpoint.js';
import { openTempVolume } from '../../../test/helpers/temp-volume.js';
import { BlockmirrorError } from '../../errors.js';
import { PairMeta } from '../lineage/pair-meta.js';
import type { SecondaryEndpoint } from './secondary-endpoint.js';

const logger = winston.createLogger({ silent: true });
const VOLUME_BYTES = 1 << 20;
const BLOCK_SIZE = 65536;

type Pick<T> = { kind: 'right' } | { kind: 'other'; value: T };

interface HandshakeAction {
  kind: 'handshake';
  volumeBytes: Pick<number>;
  blockSize: Pick<number>;
  /** One of a few lineages (so a later handshake may match an earlier one), or empty. */
  primaryGeneration: string;
  /** The secondary's own generation (what a primary that synced with it sends), empty, or another. */
  syncedSecondary: 'mine' | 'none' | 'stale';
  pairId: string;
}

type Action =
  | HandshakeAction
  /** MarkSynced with the latest session, an older one, or one never issued. */
  | { kind: 'markSynced'; session: 'latest' | 'older' | 'unknown' | 'empty' }
  /** The sidecar restarts: a new endpoint over the same state. */
  | { kind: 'restart' };

const numberNear = (right: number): fc.Arbitrary<Pick<number>> =>
  fc.oneof(
    { arbitrary: fc.constant({ kind: 'right' as const }), weight: 6 },
    {
      arbitrary: fc.record({
        kind: fc.constant('other' as const),
        // Off by one, zero, a power of two away, beyond 2^53 (a uint64 as a JS number), anything.
        value: fc.oneof(fc.constantFrom(right - 1, right + 1, 0, right * 2, right / 2, 2 ** 53, 2 ** 64, 4096, 1 << 20), fc.nat()).filter((v) => v !== right),
      }),
      weight: 1,
    },
  );

const action: fc.Arbitrary<Action> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('handshake' as const),
      volumeBytes: numberNear(VOLUME_BYTES),
      blockSize: numberNear(BLOCK_SIZE),
      primaryGeneration: fc.oneof({ arbitrary: fc.constantFrom('gen-a', 'gen-b'), weight: 6 }, { arbitrary: fc.constant(''), weight: 1 }, { arbitrary: fc.string({ maxLength: 12 }), weight: 1 }),
      syncedSecondary: fc.constantFrom('mine' as const, 'none' as const, 'stale' as const),
      pairId: fc.string({ maxLength: 8 }),
    }),
    weight: 5,
  },
  { arbitrary: fc.record({ kind: fc.constant('markSynced' as const), session: fc.constantFrom('latest' as const, 'latest' as const, 'older' as const, 'unknown' as const, 'empty' as const) }), weight: 2 },
  { arbitrary: fc.constant<Action>({ kind: 'restart' }), weight: 1 },
);

/** The code a call failed with; anything but a BlockmirrorError escapes. */
async function codeOf(fn: () => Promise<unknown>): Promise<string | null> {
  try {
    await fn();
    return null;
  } catch (err) {
    if (!(err instanceof BlockmirrorError)) throw err;
    return err.code;
  }
}

describe('SecondaryEndpoint.handshake under fuzzing', () => {
  it('accepts a primary only when geometry and generations allow, refuses it with a typed error otherwise, and a refusal changes nothing', async () => {
    await fuzz(
      fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 12 }), async (actions) => {
        const tmp = await openTempVolume('bm-hs-fuzz-', VOLUME_BYTES);
        const state = join(tmp.dir, 'state');
        const open = (): Promise<SecondaryEndpoint> => openSecondaryEndpoint('db', tmp.volume, BLOCK_SIZE, state, logger);
        try {
          let ep = await open();
          const myGeneration = (await PairMeta.load(state, 'secondary')).image;
          // The model: the generation this secondary holds a full copy of, and the session.
          let synced = '';
          let session = '';
          let sessionGeneration = '';
          const issued: string[] = [];
          for (const a of actions) {
            if (a.kind === 'restart') {
              ep = await open();
              session = '';
              sessionGeneration = '';
              continue;
            }
            if (a.kind === 'markSynced') {
              const id = a.session === 'latest' ? session : a.session === 'older' ? (issued.at(-2) ?? 'never-issued') : a.session === 'unknown' ? 'never-issued' : '';
              const ok = id !== '' && id === session;
              const outcome = await ep.markSynced(id).then(
                () => null,
                (err: unknown) => {
                  if (!(err instanceof BlockmirrorError)) throw err;
                  return err.code;
                },
              );
              expect({ action: a, id, outcome }).toEqual({ action: a, id, outcome: ok ? null : 'GEOMETRY_MISMATCH' });
              if (ok) synced = sessionGeneration;
              continue;
            }
            const req = {
              pairId: a.pairId,
              volumeBytes: a.volumeBytes.kind === 'right' ? VOLUME_BYTES : a.volumeBytes.value,
              blockSize: a.blockSize.kind === 'right' ? BLOCK_SIZE : a.blockSize.value,
              primaryGeneration: a.primaryGeneration,
              syncedSecondaryGeneration: a.syncedSecondary === 'mine' ? myGeneration : a.syncedSecondary === 'none' ? '' : 'some-older-generation',
              mode: 'sync',
              generations: null,
            };
            const allowed = req.volumeBytes === VOLUME_BYTES && req.blockSize === BLOCK_SIZE && req.primaryGeneration !== '' && (synced === '' || synced === req.primaryGeneration);
            let response: Awaited<ReturnType<SecondaryEndpoint['handshake']>> | undefined;
            const code = await codeOf(async () => (response = await ep.handshake(req)));
            if (!allowed) {
              // Refused with the typed code (callers map it to FAILED_PRECONDITION), and
              // the running session, if any, is untouched.
              expect({ req, code }).toEqual({ req, code: 'GEOMETRY_MISMATCH' });
              expect(ep.isSession(session)).toBe(session !== '');
              continue;
            }
            expect({ req, code }).toEqual({ req, code: null });
            const r = response!;
            expect(r.secondaryGeneration).toBe(myGeneration);
            // A full copy unless this secondary holds one of this primary that the primary knows about.
            expect({ req, synced, full: r.fullSyncRequired }).toEqual({ req, synced, full: synced === '' || req.syncedSecondaryGeneration !== myGeneration });
            expect(r.sessionId).not.toBe('');
            expect(issued).not.toContain(r.sessionId);
            // One primary at a time: the new session replaces the old one.
            if (session !== '') expect(ep.isSession(session)).toBe(false);
            expect(ep.isSession(r.sessionId)).toBe(true);
            issued.push(r.sessionId);
            session = r.sessionId;
            sessionGeneration = req.primaryGeneration;
          }
          expect(ep.consistent).toBe(synced !== '');
          // What survives a restart: the synced generation, not the session.
          const reopened = await open();
          expect(reopened.isSession(session)).toBe(false);
          expect((await PairMeta.load(state, 'secondary')).current).toBe(synced);
        } finally {
          await tmp.remove();
        }
      }),
      150,
    );
  });
});
