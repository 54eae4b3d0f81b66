// Original file: blockmirror/control/v1/control.proto


export interface DeletePairRequest {
  'name'?: (string);
}

export interface DeletePairRequest__Output {
  'name': (string);
}
