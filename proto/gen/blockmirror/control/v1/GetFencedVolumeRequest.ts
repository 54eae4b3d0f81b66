// Original file: blockmirror/control/v1/control.proto


export interface GetFencedVolumeRequest {
  'pv'?: (string);
}

export interface GetFencedVolumeRequest__Output {
  'pv': (string);
}
