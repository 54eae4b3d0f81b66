import { describe, expect, it } from '@jest/globals';
import { appliedAfter, planRole, type RoleFacts } from './role-plan.js';

const facts = (f: Partial<RoleFacts>): RoleFacts => ({ wanted: 'primary', applied: 'primary', held: 'primary', state: 'InSync', sidecarDiscarding: false, unrelated: false, forcePromote: false, discardMyData: false, ...f });

describe('planRole', () => {
  it.each<[string, Partial<RoleFacts>, string]>([
    ['the sidecar holds the role asked for', {}, 'none'],
    ['spec changed to secondary: demote', { wanted: 'secondary', applied: 'primary' }, 'demote'],
    ['spec changed to primary: promote (not forced)', { wanted: 'primary', applied: 'secondary', held: 'secondary' }, 'promote:false'],
    ['spec changed to primary with forcePromote', { wanted: 'primary', applied: 'secondary', held: 'secondary', forcePromote: true }, 'promote:true'],
    ['spec unchanged primary, sidecar secondary: it demoted itself, never promoted back', { held: 'secondary' }, 'demoted-by-peer'],
    ['... even with forcePromote still set', { held: 'secondary', forcePromote: true }, 'demoted-by-peer'],
    ['a resource from before role changes (no appliedRole) is taken as unchanged', { applied: undefined, held: 'secondary' }, 'demoted-by-peer'],
    ['spec unchanged secondary, sidecar primary: not demoted behind the user', { wanted: 'secondary', applied: 'secondary' }, 'primary-outside'],
    ['discardMyData on a primary being demoted: discard instead of demote', { wanted: 'secondary', applied: 'primary', discardMyData: true }, 'discard'],
    ['discardMyData on a secondary in split brain', { wanted: 'secondary', applied: 'secondary', held: 'secondary', state: 'SplitBrain', discardMyData: true }, 'discard'],
    ['discardMyData on a secondary refusing unrelated data', { wanted: 'secondary', applied: 'secondary', held: 'secondary', state: 'Retrying', unrelated: true, discardMyData: true }, 'discard'],
    ['discardMyData already taken by the sidecar: not asked again', { wanted: 'secondary', applied: 'secondary', held: 'secondary', state: 'SplitBrain', discardMyData: true, sidecarDiscarding: true }, 'none'],
    ['discardMyData left set with nothing to discard: nothing', { wanted: 'secondary', applied: 'secondary', held: 'secondary', discardMyData: true }, 'none'],
    ['split brain without discardMyData: nothing moves', { state: 'SplitBrain' }, 'none'],
  ])('%s', (_what, f, want) => {
    const a = planRole(facts(f));
    expect(a.kind === 'promote' ? `promote:${String(a.force)}` : a.kind).toBe(want);
  });

  it('records the role carried out: the spec role, except for a role the sidecar took by itself', () => {
    expect(appliedAfter({ kind: 'demote' }, { wanted: 'secondary', applied: 'primary' })).toBe('secondary');
    expect(appliedAfter({ kind: 'none' }, { wanted: 'secondary', applied: 'primary' })).toBe('secondary');
    expect(appliedAfter({ kind: 'demoted-by-peer' }, { wanted: 'primary', applied: 'primary' })).toBe('primary');
    expect(appliedAfter({ kind: 'demoted-by-peer' }, { wanted: 'primary', applied: undefined })).toBe('primary');
    expect(appliedAfter({ kind: 'primary-outside' }, { wanted: 'secondary', applied: 'secondary' })).toBe('secondary');
  });
});
