// Original file: blockmirror/control/v1/control.proto


export interface StageVolumeRequest {
  'pv'?: (string);
  'device'?: (string);
}

export interface StageVolumeRequest__Output {
  'pv': (string);
  'device': (string);
}
