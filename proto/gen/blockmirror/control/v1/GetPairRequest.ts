// Original file: blockmirror/control/v1/control.proto


export interface GetPairRequest {
  'name'?: (string);
}

export interface GetPairRequest__Output {
  'name': (string);
}
