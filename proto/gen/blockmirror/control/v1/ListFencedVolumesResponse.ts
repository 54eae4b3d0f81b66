// Original file: blockmirror/control/v1/control.proto

import type { FencedVolume as _blockmirror_control_v1_FencedVolume, FencedVolume__Output as _blockmirror_control_v1_FencedVolume__Output } from '../../../blockmirror/control/v1/FencedVolume.js';

export interface ListFencedVolumesResponse {
  'volumes'?: (_blockmirror_control_v1_FencedVolume)[];
}

export interface ListFencedVolumesResponse__Output {
  'volumes': (_blockmirror_control_v1_FencedVolume__Output)[];
}
