import type { PairState__Output } from '../../proto/gen/blockmirror/control/v1/PairState.js';

/**
 * The states a pair shows. There is no "Suspended": a fault makes a pair Retrying.
 * SplitBrain is no fault: both sides wrote as primaries, and a person decides which loses.
 */
export const PAIR_STATES = ['Initializing', 'InSync', 'Replicating', 'Resyncing', 'Retrying', 'Paused', 'Standalone', 'SplitBrain'] as const;
export type PairStateName = (typeof PAIR_STATES)[number];

const TO_PROTO: Record<PairStateName, PairState__Output> = {
  Initializing: 'PAIR_STATE_INITIALIZING',
  InSync: 'PAIR_STATE_IN_SYNC',
  Replicating: 'PAIR_STATE_REPLICATING',
  Resyncing: 'PAIR_STATE_RESYNCING',
  Retrying: 'PAIR_STATE_RETRYING',
  Paused: 'PAIR_STATE_PAUSED',
  Standalone: 'PAIR_STATE_STANDALONE',
  SplitBrain: 'PAIR_STATE_SPLIT_BRAIN',
};

export function pairStateToProto(s: PairStateName): PairState__Output {
  return TO_PROTO[s];
}

export function pairStateFromProto(s: PairState__Output): PairStateName | undefined {
  return PAIR_STATES.find((k) => TO_PROTO[k] === s);
}
