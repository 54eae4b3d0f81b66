// Original file: blockmirror/control/v1/control.proto


export interface PromotePairRequest {
  'name'?: (string);
  'force'?: (boolean);
  'peerAddress'?: (string);
  'peerPair'?: (string);
  'nbdListen'?: (string);
  'nbdSocket'?: (string);
}

export interface PromotePairRequest__Output {
  'name': (string);
  'force': (boolean);
  'peerAddress': (string);
  'peerPair': (string);
  'nbdListen': (string);
  'nbdSocket': (string);
}
