// Original file: blockmirror/control/v1/control.proto

import type { PairSpec as _blockmirror_control_v1_PairSpec, PairSpec__Output as _blockmirror_control_v1_PairSpec__Output } from '../../../blockmirror/control/v1/PairSpec.js';
import type { PairStatus as _blockmirror_control_v1_PairStatus, PairStatus__Output as _blockmirror_control_v1_PairStatus__Output } from '../../../blockmirror/control/v1/PairStatus.js';

export interface Pair {
  'spec'?: (_blockmirror_control_v1_PairSpec | null);
  'status'?: (_blockmirror_control_v1_PairStatus | null);
}

export interface Pair__Output {
  'spec': (_blockmirror_control_v1_PairSpec__Output | null);
  'status': (_blockmirror_control_v1_PairStatus__Output | null);
}
