// Original file: blockmirror/control/v1/control.proto


export interface UnfenceVolumeRequest {
  'pv'?: (string);
}

export interface UnfenceVolumeRequest__Output {
  'pv': (string);
}
