// Original file: blockmirror/control/v1/control.proto

export const Mode = {
  MODE_UNSPECIFIED: 'MODE_UNSPECIFIED',
  MODE_SYNC: 'MODE_SYNC',
  MODE_ASYNC: 'MODE_ASYNC',
} as const;

export type Mode =
  | 'MODE_UNSPECIFIED'
  | 0
  | 'MODE_SYNC'
  | 1
  | 'MODE_ASYNC'
  | 2

export type Mode__Output = typeof Mode[keyof typeof Mode]
