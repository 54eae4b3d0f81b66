// Original file: blockmirror/control/v1/control.proto


export interface AttachVolumeRequest {
  'pv'?: (string);
  'pair'?: (string);
}

export interface AttachVolumeRequest__Output {
  'pv': (string);
  'pair': (string);
}
