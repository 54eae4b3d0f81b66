import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import type { PromotePairRequest } from '../../proto/gen/blockmirror/control/v1/PromotePairRequest.js';
import { pairToJson } from '../../sidecar/control/pair-json.js';
import type { ReplicationPair } from '../api/replication-pair.js';
import type { EventRecord } from '../kube/kube-client.js';
import { sidecarPairName } from '../sidecar-pair-name.js';
import { isRefusal } from '../sidecar-refusal.js';
import type { Observation } from '../status/pair-status.js';
import { ProblemError } from '../status/problem-error.js';
import { refusedPromotionMessage } from './refused-promotion-message.js';
import type { RoleAction } from './role-plan.js';

/** What the role step needs of a sidecar's control API. */
export interface RoleControl {
  /** Waits up to `timeoutMs` for everything to be shipped; the call's own deadline is past that. */
  demotePair(name: string, opts: { force?: boolean; timeoutMs?: number }): Promise<Pair__Output>;
  promotePair(req: PromotePairRequest): Promise<Pair__Output>;
  discardMyData(name: string): Promise<Pair__Output>;
}

/** One role step: the action planRole chose for the pair its sidecar holds. */
export interface RoleStep {
  pair: ReplicationPair;
  /** The pass's observation: a refused step reports the pair as it was before. */
  obs: Observation;
  current: Pair__Output;
  action: RoleAction;
}

export interface RoleChangeDeps {
  control: RoleControl;
  /** Records an event on the pair, best effort (never throws). */
  event(e: EventRecord): Promise<void>;
  /** When a refusal that clears by itself, or waits for the user, is looked at again. */
  pollMs: number;
  /** Longest a demotion waits for everything to be shipped to the peer. */
  demoteTimeoutMs: number;
}

/**
 * The role step (see planRole): a demotion, promotion or discard through the sidecar's
 * role calls, which keep the pair's dirty log and generation ids. Answers the sidecar
 * pair after it. What the operator does not do (a primary that demoted itself is not
 * promoted back) throws a ProblemError, said in a condition.
 */
export async function changeRole(step: RoleStep, deps: RoleChangeDeps): Promise<Pair__Output> {
  const { pair, obs, current, action } = step;
  const { control, event } = deps;
  const { namespace, name } = pair.metadata;
  const sidecarName = sidecarPairName(namespace, name);
  const before = pairToJson(current);
  const patch = (json: string): string => `kubectl patch rp ${name} -n ${namespace} --type=merge -p '${json}'`;
  // One Warning per refusal, not one per pass: the condition already says it.
  const known = (reason: string): boolean => pair.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === reason) ?? false;
  switch (action.kind) {
    case 'none':
      return current;
    case 'demote': {
      const timeoutMs = deps.demoteTimeoutMs;
      await event({ type: 'Normal', reason: 'Demoting', message: `demoting: the export refuses writes from now on; everything this side holds is shipped to its peer (up to ${timeoutMs / 1000} s) before it becomes a secondary` });
      let after: Pair__Output;
      try {
        after = await control.demotePair(sidecarName, { force: false, timeoutMs });
      } catch (err) {
        if (!isRefusal(err)) throw err;
        obs.pair = before;
        const message =
          `not demoted: ${(err as Error).message}. The operator tries again. If the peer is gone for good and the other side is to take over, ` +
          `promote it with spec.forcePromote (this side learns it is stale when it reaches the peer, and demotes itself), or discard what this side did not ship: ${patch('{"spec":{"discardMyData":true}}')}`;
        if (!known('DemotionFailed')) await event({ type: 'Warning', reason: 'DemotionFailed', message });
        throw new ProblemError({ reason: 'DemotionFailed', message, permanent: false });
      }
      const j = pairToJson(after);
      await event({ type: 'Normal', reason: 'Demoted', message: `demoted: everything was shipped to the peer, which holds generation ${j.generation}; the export stays listening and refuses every request` });
      return after;
    }
    case 'discard': {
      const after = await control.discardMyData(sidecarName);
      const was = before.role === 'primary' ? 'demoted at once (nothing shipped) and its' : 'its';
      await event({
        type: 'Warning',
        reason: 'DiscardingMyData',
        message: `spec.discardMyData: this side (${before.role}, generation ${before.generation || 'none'}) is ${was} data is overwritten by its peer's at the next session (a delta from their common generation when both dirty logs reach back to it, else a full copy)`,
      });
      return after;
    }
    case 'promote': {
      const req: PromotePairRequest = { name: sidecarName, force: action.force, ...promoteSettings(pair, current) };
      let after: Pair__Output;
      try {
        after = await control.promotePair(req);
      } catch (err) {
        if (!isRefusal(err)) throw err;
        obs.pair = before;
        const message = refusedPromotionMessage(pair, before, (err as Error).message, action.force, patch('{"spec":{"forcePromote":true}}'));
        if (!known('PromotionRefused')) await event({ type: 'Warning', reason: 'PromotionRefused', message });
        throw new ProblemError({ reason: 'PromotionRefused', message, permanent: false, recheckAfterMs: deps.pollMs });
      }
      const j = pairToJson(after);
      const from = before.generation;
      if (action.force && !before.primaryDemoted) {
        const point = j.promotedPointTime ?? 'an unknown time';
        await event({
          type: 'Warning',
          reason: 'Promoted',
          message: `promoted by force to generation ${j.generation} (from ${from}): the volume holds the old primary's data as of ${point} (${pair.spec.mode === 'async' ? 'the last consistency group applied here' : 'the last write received here'}); writes it acknowledged after that are lost, and if it went on writing alone its return shows a split brain`,
        });
      } else {
        await event({ type: 'Normal', reason: 'Promoted', message: `promoted to generation ${j.generation} (from ${from}): the export takes writes; the old primary gets this side's writes as a delta` });
      }
      return after;
    }
    case 'demoted-by-peer': {
      obs.pair = before;
      const message =
        `the sidecar is a secondary although spec.role is primary: it demoted itself (its peer holds generation ${before.peerGeneration || 'unknown'}, newer than and descending from this side's ${before.generation}): ` +
        `the remote side was promoted. Its export refuses writes and it takes the peer's data (writes it acknowledged that the peer never got are overwritten). ` +
        `The operator does not promote it back. Make the spec say so: ${patch('{"spec":{"role":"secondary","forcePromote":null}}')}; to bring the application home later, switch over (demote the other side, then promote this one).`;
      if (!known('Demoted')) await event({ type: 'Warning', reason: 'Demoted', message });
      throw new ProblemError({ reason: 'Demoted', message, permanent: false, recheckAfterMs: deps.pollMs });
    }
    case 'primary-outside': {
      obs.pair = before;
      const message = `the sidecar is a primary although spec.role is secondary and has not changed (promoted outside the operator): the operator does not demote it behind your back. To keep it: ${patch('{"spec":{"role":"primary"}}')} (spec.remote is needed); to demote it, set role primary, then secondary again`;
      if (!known('RoleMismatch')) await event({ type: 'Warning', reason: 'RoleMismatch', message });
      throw new ProblemError({ reason: 'RoleMismatch', message, permanent: false, recheckAfterMs: deps.pollMs });
    }
  }
}

/** Where a promoted pair replicates to, and the export the application writes to. */
function promoteSettings(pair: ReplicationPair, current: Pair__Output): Pick<PromotePairRequest, 'peerAddress' | 'peerPair' | 'nbdListen' | 'nbdSocket'> {
  const { namespace, name } = pair.metadata;
  const remote = pair.spec.remote;
  const have = current.spec;
  // A demoted primary's export is still listening (fenced): it keeps its address.
  const hasExport = (have?.nbdListen ?? '') !== '' || (have?.nbdSocket ?? '') !== '';
  return {
    peerAddress: remote?.endpoint ?? '',
    peerPair: remote !== undefined ? sidecarPairName(remote.namespace ?? namespace, remote.name ?? name) : '',
    nbdListen: hasExport ? '' : '127.0.0.1:0',
    nbdSocket: '',
  };
}
