// Original file: blockmirror/control/v1/control.proto

import type { SplicedVolume as _blockmirror_control_v1_SplicedVolume, SplicedVolume__Output as _blockmirror_control_v1_SplicedVolume__Output } from '../../../blockmirror/control/v1/SplicedVolume.js';

export interface ListVolumesResponse {
  'volumes'?: (_blockmirror_control_v1_SplicedVolume)[];
}

export interface ListVolumesResponse__Output {
  'volumes': (_blockmirror_control_v1_SplicedVolume__Output)[];
}
