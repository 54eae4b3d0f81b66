// Original file: blockmirror/control/v1/control.proto


export interface ResumePairRequest {
  'name'?: (string);
}

export interface ResumePairRequest__Output {
  'name': (string);
}
