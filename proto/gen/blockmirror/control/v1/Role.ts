// Original file: blockmirror/control/v1/control.proto

export const Role = {
  ROLE_UNSPECIFIED: 'ROLE_UNSPECIFIED',
  ROLE_PRIMARY: 'ROLE_PRIMARY',
  ROLE_SECONDARY: 'ROLE_SECONDARY',
} as const;

export type Role =
  | 'ROLE_UNSPECIFIED'
  | 0
  | 'ROLE_PRIMARY'
  | 1
  | 'ROLE_SECONDARY'
  | 2

export type Role__Output = typeof Role[keyof typeof Role]
