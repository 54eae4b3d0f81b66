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
      // Acceptance tests start real processes and real NBD clients.
      testTimeout: 180_000,
    },
  ],
};
