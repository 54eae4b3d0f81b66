// Jest runs the TypeScript sources as native ES modules (node --experimental-vm-modules).
// @swc/jest only strips types, so the transform does not depend on the pinned `typescript`;
// type checking is `tsc --noEmit`, run by `npm test` before jest.
const common = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'es6' },
        sourceMaps: 'inline',
      },
    ],
  },
};

export default {
  // Acceptance tests start real processes and real NBD clients (set here: jest ignores
  // testTimeout inside a project).
  testTimeout: 180_000,
  // After the async replication suite, Node's exit-time handle cleanup
  // (Environment::CleanupHandles) spins forever on a request that never completes; the
  // tests have all finished by then. Exit explicitly rather than hang the run (a leak in
  // the test process to find, not in the sidecar: those are separate processes).
  forceExit: true,
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/sidecar/**/*.test.ts', '<rootDir>/operator/**/*.test.ts', '<rootDir>/proto/**/*.test.ts'],
    },
    {
      ...common,
      displayName: 'acceptance',
      testMatch: ['<rootDir>/test/**/*.test.ts'],
    },
  ],
};
