// Original file: blockmirror/replication/v1/replication.proto


export interface Generations {
  'current'?: (string);
  'bitmap'?: (string);
  'history'?: (string)[];
}

export interface Generations__Output {
  'current': (string);
  'bitmap': (string);
  'history': (string)[];
}
