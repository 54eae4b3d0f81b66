// Original file: blockmirror/control/v1/control.proto


export interface DiscardMyDataRequest {
  'name'?: (string);
}

export interface DiscardMyDataRequest__Output {
  'name': (string);
}
