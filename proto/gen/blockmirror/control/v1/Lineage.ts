// Original file: blockmirror/control/v1/control.proto

import type { Role as _blockmirror_control_v1_Role, Role__Output as _blockmirror_control_v1_Role__Output } from '../../../blockmirror/control/v1/Role.js';

export interface Lineage {
  'role'?: (_blockmirror_control_v1_Role);
  'generation'?: (string);
  'history'?: (string)[];
  'consistent'?: (boolean);
  'promotion'?: (string);
}

export interface Lineage__Output {
  'role': (_blockmirror_control_v1_Role__Output);
  'generation': (string);
  'history': (string)[];
  'consistent': (boolean);
  'promotion': (string);
}
