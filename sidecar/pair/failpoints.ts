/**
 * Points of a role change where a test may have the process killed
 * (PairManagerOptions.crashAt). Apart from the pair manager so the CLI can offer them
 * without loading it.
 */
export const FAILPOINTS = ['demote:before-commit', 'demote:after-commit', 'promote:before-commit', 'promote:after-commit'] as const;
