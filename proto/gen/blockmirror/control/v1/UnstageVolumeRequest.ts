// Original file: blockmirror/control/v1/control.proto


export interface UnstageVolumeRequest {
  'pv'?: (string);
}

export interface UnstageVolumeRequest__Output {
  'pv': (string);
}
