import { describe, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { runCrashSoak, SOAK_FAULTS, type SoakMode } from './helpers/crash-soak.js';

// The crash soak of issue 15 (see helpers/crash-soak.ts): 20 iterations per mode in the
// test command. The full soak is `bash test/crash-soak.sh` (100 per mode). A failure
// names its seed; SOAK_SEED=<seed> replays the same faults at the same moments (the
// timing of the processes themselves varies from run to run).
const iterations = Number(process.env['SOAK_ITERATIONS'] ?? 20);
const seed = Number(process.env['SOAK_SEED'] ?? Math.floor(Math.random() * 1e9));
const reportFile = process.env['SOAK_REPORT'];

describe('crash soak: kill -9, power cuts and link faults on either side, at random moments', () => {
  const reports: unknown[] = [];
  for (const mode of ['sync', 'async'] as SoakMode[]) {
    it(
      `${mode}${mode === 'async' ? ' (a two-volume consistency group)' : ''}: nothing acknowledged is lost, the volumes converge${mode === 'async' ? ', the secondary is always a prefix of the writes' : ''} (seed ${seed})`,
      async () => {
        const lines: string[] = [];
        const report = await runCrashSoak({ mode, iterations, seed, log: (l) => lines.push(l) });
        reports.push({ ...report, log: lines });
        if (reportFile) writeFileSync(reportFile, JSON.stringify(reports, null, 2) + '\n');
        expect(report.iterations).toBe(iterations);
        expect(report.writesAcked).toBeGreaterThan(iterations * 10);
        // Every kind of fault ran, and the power cuts took something away on both sides.
        if (iterations >= SOAK_FAULTS.length) {
          for (const f of SOAK_FAULTS) expect({ fault: f, count: report.faults[f] }).toEqual({ fault: f, count: expect.any(Number) as unknown });
          expect(Math.min(...SOAK_FAULTS.map((f) => report.faults[f]))).toBeGreaterThan(0);
          // Every write is FUA, so a primary's cut may find nothing unsynced. In async
          // mode the secondary's staged journals are what a cut there takes, every time
          // a group is in flight. In sync mode the secondary flushes each FUA write
          // before its ack, so its unflushed window is one write: a short soak may cut
          // it empty (CI seed 733812347 did), and losing data at a cut is proved
          // deterministically by test/power-loss.test.ts instead.
          if (mode === 'async') {
            expect(report.cutDropped.secondaryBytes + report.cutDropped.entries).toBeGreaterThan(0);
            expect(report.prefixChecks).toBeGreaterThan(0);
          }
        }
      },
      Math.max(600_000, iterations * 30_000),
    );
  }
});
