// Original file: blockmirror/control/v1/control.proto


export interface DemotePairRequest {
  'name'?: (string);
  'force'?: (boolean);
  'timeoutMs'?: (number);
}

export interface DemotePairRequest__Output {
  'name': (string);
  'force': (boolean);
  'timeoutMs': (number);
}
