import { describe, expect, it } from '@jest/globals';
import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import type { PromotePairRequest } from '../../proto/gen/blockmirror/control/v1/PromotePairRequest.js';
import { FINALIZER, type ReplicationPair } from '../api/replication-pair.js';
import type { EventRecord } from '../kube/kube-client.js';
import type { Observation } from '../status/pair-status.js';
import { ProblemError } from '../status/problem-error.js';
import { changeRole, type RoleControl } from './role-change.js';
import type { RoleAction } from './role-plan.js';

function pairObject(spec: Partial<ReplicationPair['spec']> = {}, status?: ReplicationPair['status']): ReplicationPair {
  return {
    apiVersion: 'blockmirror.io/v1alpha1',
    kind: 'ReplicationPair',
    metadata: { name: 'db', namespace: 'apps', generation: 3, finalizers: [FINALIZER] },
    spec: { pvcName: 'db-data', role: 'primary', mode: 'sync', remote: { endpoint: 'site-b:7401', name: 'db-b' }, ...spec },
    ...(status !== undefined ? { status } : {}),
  };
}

const sidecarPair = (role: 'ROLE_PRIMARY' | 'ROLE_SECONDARY', status: Record<string, unknown> = {}, spec: Record<string, unknown> = {}): Pair__Output =>
  ({ spec: { name: 'apps.db', role, ...spec }, status: { state: 'PAIR_STATE_IN_SYNC', generation: 'g1', ...status } }) as unknown as Pair__Output;

const refused = (message: string): Error => Object.assign(new Error(message), { grpcCode: 9 });

/** Role calls answer what the test sets; every call is recorded. */
class FakeControl implements RoleControl {
  readonly calls: string[] = [];
  readonly promotions: PromotePairRequest[] = [];
  answer: Pair__Output | Error = sidecarPair('ROLE_SECONDARY', { generation: 'g2' });

  demotePair(name: string, opts: { force?: boolean; timeoutMs?: number }): Promise<Pair__Output> {
    this.calls.push(`demote ${name} force=${String(opts.force)} wait=${String(opts.timeoutMs)}`);
    return this.#answer();
  }

  promotePair(req: PromotePairRequest): Promise<Pair__Output> {
    this.calls.push(`promote ${String(req.name)}`);
    this.promotions.push(req);
    return this.#answer();
  }

  discardMyData(name: string): Promise<Pair__Output> {
    this.calls.push(`discard ${name}`);
    return this.#answer();
  }

  #answer(): Promise<Pair__Output> {
    return this.answer instanceof Error ? Promise.reject(this.answer) : Promise.resolve(this.answer);
  }
}

async function step(pair: ReplicationPair, current: Pair__Output, action: RoleAction, control = new FakeControl()) {
  const events: EventRecord[] = [];
  const obs: Observation = { generation: 3, mode: 'sync' };
  const run = changeRole({ pair, obs, current, action }, { control, event: (e) => Promise.resolve(void events.push(e)), pollMs: 1000, demoteTimeoutMs: 5000 });
  const result: { after?: Pair__Output; err?: unknown } = await run.then(
    (after) => ({ after }),
    (err: unknown) => ({ err }),
  );
  return { ...result, events, obs, control };
}

describe('changeRole', () => {
  it('nothing to do: the pair as it is, no call, no event', async () => {
    const current = sidecarPair('ROLE_PRIMARY');
    const r = await step(pairObject(), current, { kind: 'none' });
    expect(r.after).toBe(current);
    expect(r.control.calls).toEqual([]);
    expect(r.events).toEqual([]);
  });

  it('demotes without force, waiting up to the timeout, with an event before and after', async () => {
    const r = await step(pairObject({ role: 'secondary' }), sidecarPair('ROLE_PRIMARY'), { kind: 'demote' });
    expect(r.control.calls).toEqual(['demote apps.db force=false wait=5000']);
    expect(r.events.map((e) => `${e.type} ${e.reason}`)).toEqual(['Normal Demoting', 'Normal Demoted']);
    expect(r.events[0]!.message).toContain('(up to 5 s)');
    expect(r.events[1]!.message).toContain('holds generation g2');
  });

  it('a refused demotion reports the pair as it was and throws DemotionFailed, warning only when the condition is new', async () => {
    const control = new FakeControl();
    control.answer = refused('peer unreachable');
    const r = await step(pairObject({ role: 'secondary' }), sidecarPair('ROLE_PRIMARY'), { kind: 'demote' }, control);
    expect(r.err).toBeInstanceOf(ProblemError);
    const problem = (r.err as ProblemError).problem;
    expect(problem).toMatchObject({ reason: 'DemotionFailed', permanent: false });
    expect(problem.recheckAfterMs).toBeUndefined();
    expect(problem.message).toContain(`not demoted: peer unreachable. The operator tries again.`);
    expect(problem.message).toContain(`kubectl patch rp db -n apps --type=merge -p '{"spec":{"discardMyData":true}}'`);
    expect(r.obs.pair).toMatchObject({ role: 'primary', generation: 'g1' });
    expect(r.events.map((e) => e.reason)).toEqual(['Demoting', 'DemotionFailed']);

    const known = pairObject({ role: 'secondary' }, { conditions: [{ type: 'Ready', status: 'False', reason: 'DemotionFailed', message: '', lastTransitionTime: '' }] });
    const again = await step(known, sidecarPair('ROLE_PRIMARY'), { kind: 'demote' }, control);
    expect(again.events.map((e) => e.reason)).toEqual(['Demoting']);
  });

  it('an error that is not a refusal propagates as it is', async () => {
    const control = new FakeControl();
    const down = Object.assign(new Error('connection refused'), { grpcCode: 14 });
    control.answer = down;
    const r = await step(pairObject({ role: 'secondary' }), sidecarPair('ROLE_PRIMARY'), { kind: 'demote' }, control);
    expect(r.err).toBe(down);
  });

  it('promotes with the remote as its peer; an export is opened only when the pair has none', async () => {
    const fresh = await step(pairObject(), sidecarPair('ROLE_SECONDARY'), { kind: 'promote', force: false });
    expect(fresh.control.promotions).toEqual([{ name: 'apps.db', force: false, peerAddress: 'site-b:7401', peerPair: 'apps.db-b', nbdListen: '127.0.0.1:0', nbdSocket: '' }]);
    expect(fresh.events.map((e) => `${e.type} ${e.reason}`)).toEqual(['Normal Promoted']);

    const demoted = await step(pairObject(), sidecarPair('ROLE_SECONDARY', {}, { nbdListen: '127.0.0.1:10809' }), { kind: 'promote', force: false });
    expect(demoted.control.promotions[0]).toMatchObject({ nbdListen: '' });
  });

  it('a forced promotion over a primary that did not demote warns of the data-loss window', async () => {
    const r = await step(pairObject(), sidecarPair('ROLE_SECONDARY'), { kind: 'promote', force: true });
    expect(r.events).toHaveLength(1);
    expect(r.events[0]).toMatchObject({ type: 'Warning', reason: 'Promoted' });
    expect(r.events[0]!.message).toMatch(/^promoted by force to generation g2 \(from g1\)/);
  });

  it('a refused promotion throws PromotionRefused, looked at again after the poll interval', async () => {
    const control = new FakeControl();
    control.answer = refused('the primary has not demoted');
    const r = await step(pairObject(), sidecarPair('ROLE_SECONDARY'), { kind: 'promote', force: false }, control);
    expect((r.err as ProblemError).problem).toMatchObject({ reason: 'PromotionRefused', permanent: false, recheckAfterMs: 1000 });
    expect(r.events.map((e) => e.reason)).toEqual(['PromotionRefused']);
    expect(r.obs.pair?.role).toBe('secondary');
  });

  it('discards with a Warning naming the side and its generation', async () => {
    const r = await step(pairObject({ role: 'secondary', discardMyData: true }), sidecarPair('ROLE_PRIMARY'), { kind: 'discard' });
    expect(r.control.calls).toEqual(['discard apps.db']);
    expect(r.events[0]).toMatchObject({ type: 'Warning', reason: 'DiscardingMyData' });
    expect(r.events[0]!.message).toContain('this side (primary, generation g1) is demoted at once (nothing shipped) and its data is overwritten');
  });

  it.each<[RoleAction['kind'], 'ROLE_PRIMARY' | 'ROLE_SECONDARY', 'primary' | 'secondary', string]>([
    ['demoted-by-peer', 'ROLE_SECONDARY', 'primary', 'Demoted'],
    ['primary-outside', 'ROLE_PRIMARY', 'secondary', 'RoleMismatch'],
  ])('%s: no call, a Warning and a problem looked at again after the poll interval', async (kind, held, wanted, reason) => {
    const r = await step(pairObject({ role: wanted }), sidecarPair(held), { kind } as RoleAction);
    expect(r.control.calls).toEqual([]);
    expect((r.err as ProblemError).problem).toMatchObject({ reason, permanent: false, recheckAfterMs: 1000 });
    expect(r.events).toEqual([{ type: 'Warning', reason, message: (r.err as ProblemError).problem.message }]);
    expect(r.obs.pair).toBeDefined();
  });
});
