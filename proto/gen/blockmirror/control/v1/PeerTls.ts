// Original file: blockmirror/control/v1/control.proto


export interface PeerTls {
  'certPem'?: (string);
  'keyPem'?: (string);
  'caPem'?: (string);
}

export interface PeerTls__Output {
  'certPem': (string);
  'keyPem': (string);
  'caPem': (string);
}
