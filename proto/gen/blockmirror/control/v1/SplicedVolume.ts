// Original file: blockmirror/control/v1/control.proto


export interface SplicedVolume {
  'pv'?: (string);
  'device'?: (string);
  'state'?: (string);
  'pair'?: (string);
  'dmDevice'?: (string);
  'nbdDevice'?: (string);
  'openCount'?: (number);
  'openCountKnown'?: (boolean);
}

export interface SplicedVolume__Output {
  'pv': (string);
  'device': (string);
  'state': (string);
  'pair': (string);
  'dmDevice': (string);
  'nbdDevice': (string);
  'openCount': (number);
  'openCountKnown': (boolean);
}
