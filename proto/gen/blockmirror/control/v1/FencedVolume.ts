// Original file: blockmirror/control/v1/control.proto


export interface FencedVolume {
  'pv'?: (string);
  'pair'?: (string);
  'hold'?: (string);
  'device'?: (string);
  'volume'?: (string);
}

export interface FencedVolume__Output {
  'pv': (string);
  'pair': (string);
  'hold': (string);
  'device': (string);
  'volume': (string);
}
