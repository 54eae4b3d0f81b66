// Shared settings for the property-based fuzz tests (fast-check).
//
// A failing property reports its seed and path, and this helper adds the command that
// replays exactly that case, e.g.
//
//   FUZZ_SEED=-1204771052 FUZZ_PATH='17:3:0' node --experimental-vm-modules \
//     node_modules/jest/bin/jest.js --testPathPatterns nbd-connection.fuzz -t 'its test name'
//
// Environment (read here only: product modules take their configuration as arguments):
//   FUZZ_RUNS  runs per property, instead of each test's default (a longer soak: 10000)
//   FUZZ_SEED  the seed of a reported failure
//   FUZZ_PATH  its path (with FUZZ_SEED: replays the shrunk counterexample only)
// Select the one failing test with -t: the seed and path are given to every property run.
import { expect } from '@jest/globals';
import fc from 'fast-check';
import { relative } from 'node:path';

export interface FuzzEnv {
  FUZZ_RUNS?: string;
  FUZZ_SEED?: string;
  FUZZ_PATH?: string;
}

/** fast-check parameters: `defaultRuns` runs unless FUZZ_RUNS says otherwise, seed and path from the environment. */
export function fuzzParameters<T>(defaultRuns: number, env: FuzzEnv = process.env): fc.Parameters<T> {
  const params: fc.Parameters<T> = { numRuns: defaultRuns };
  if (env.FUZZ_RUNS !== undefined && env.FUZZ_RUNS !== '') {
    const runs = Number(env.FUZZ_RUNS);
    if (!Number.isInteger(runs) || runs < 1) throw new Error(`FUZZ_RUNS must be a positive integer, not ${JSON.stringify(env.FUZZ_RUNS)}`);
    params.numRuns = runs;
  }
  if (env.FUZZ_SEED !== undefined && env.FUZZ_SEED !== '') {
    const seed = Number(env.FUZZ_SEED);
    if (!Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, not ${JSON.stringify(env.FUZZ_SEED)}`);
    params.seed = seed;
    if (env.FUZZ_PATH !== undefined && env.FUZZ_PATH !== '') {
      if (!/^\d+(:\d+)*$/.test(env.FUZZ_PATH)) throw new Error(`FUZZ_PATH must look like 12:0:3, not ${JSON.stringify(env.FUZZ_PATH)}`);
      params.path = env.FUZZ_PATH;
    }
  }
  return params;
}

/**
 * Checks `property` (sync or async) for `defaultRuns` runs; on failure throws fast-check's
 * report (counterexample, seed, path) followed by the command that replays it.
 */
export async function fuzz<Ts>(property: fc.IProperty<Ts> | fc.IAsyncProperty<Ts>, defaultRuns: number): Promise<void> {
  const details = await fc.check(property, fuzzParameters<Ts>(defaultRuns));
  if (!details.failed) return;
  const report = fc.defaultReportMessage(details) ?? 'property failed';
  const err = details.errorInstance;
  const cause = err instanceof Error ? (err.stack ?? err.message) : String(err);
  throw new Error(`${report}\n\nGot error: ${cause}\n\nReplay this case:\n  ${replayCommand(details.seed, details.counterexamplePath)}`);
}

function replayCommand(seed: number, path: string | null): string {
  const state = expect.getState();
  const file = state.testPath ? relative(process.cwd(), state.testPath) : '<test file>';
  const name = escapeRegExp(state.currentTestName ?? '').replace(/'/g, "'\\''");
  const project = file.startsWith('test/') ? 'acceptance' : 'unit';
  const env = `FUZZ_SEED=${seed}${path ? ` FUZZ_PATH='${path}'` : ''}`;
  return `${env} node --experimental-vm-modules node_modules/jest/bin/jest.js --selectProjects ${project} --testPathPatterns '${file}' -t '${name}'`;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
