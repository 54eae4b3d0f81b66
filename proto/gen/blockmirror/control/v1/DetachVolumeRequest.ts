// Original file: blockmirror/control/v1/control.proto


export interface DetachVolumeRequest {
  'pv'?: (string);
}

export interface DetachVolumeRequest__Output {
  'pv': (string);
}
