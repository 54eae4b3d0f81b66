// Original file: blockmirror/control/v1/control.proto

import type { Lineage as _blockmirror_control_v1_Lineage, Lineage__Output as _blockmirror_control_v1_Lineage__Output } from '../../../blockmirror/control/v1/Lineage.js';

export interface DeletePairResponse {
  'lineage'?: (_blockmirror_control_v1_Lineage | null);
}

export interface DeletePairResponse__Output {
  'lineage': (_blockmirror_control_v1_Lineage__Output | null);
}
