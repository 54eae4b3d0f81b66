// Original file: blockmirror/control/v1/control.proto

import type { Pair as _blockmirror_control_v1_Pair, Pair__Output as _blockmirror_control_v1_Pair__Output } from '../../../blockmirror/control/v1/Pair.js';

export interface ListPairsResponse {
  'pairs'?: (_blockmirror_control_v1_Pair)[];
}

export interface ListPairsResponse__Output {
  'pairs': (_blockmirror_control_v1_Pair__Output)[];
}
