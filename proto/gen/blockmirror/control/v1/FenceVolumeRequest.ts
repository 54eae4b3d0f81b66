// Original file: blockmirror/control/v1/control.proto


export interface FenceVolumeRequest {
  'pv'?: (string);
  'pair'?: (string);
  'volume'?: (string);
}

export interface FenceVolumeRequest__Output {
  'pv': (string);
  'pair': (string);
  'volume': (string);
}
