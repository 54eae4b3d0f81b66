// Original file: blockmirror/control/v1/control.proto

import type { PairSpec as _blockmirror_control_v1_PairSpec, PairSpec__Output as _blockmirror_control_v1_PairSpec__Output } from '../../../blockmirror/control/v1/PairSpec.js';

export interface UpdatePairRequest {
  'spec'?: (_blockmirror_control_v1_PairSpec | null);
}

export interface UpdatePairRequest__Output {
  'spec': (_blockmirror_control_v1_PairSpec__Output | null);
}
