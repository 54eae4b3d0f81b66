// Original file: blockmirror/control/v1/control.proto


export interface ReportFencedVolumeRequest {
  'pv'?: (string);
  'hold'?: (string);
  'device'?: (string);
}

export interface ReportFencedVolumeRequest__Output {
  'pv': (string);
  'hold': (string);
  'device': (string);
}
