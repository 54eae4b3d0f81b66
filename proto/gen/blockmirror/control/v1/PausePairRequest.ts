// Original file: blockmirror/control/v1/control.proto


export interface PausePairRequest {
  'name'?: (string);
}

export interface PausePairRequest__Output {
  'name': (string);
}
