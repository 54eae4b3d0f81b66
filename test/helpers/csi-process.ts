import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { run } from './run-cli.js';
import { CLI } from './sidecar-process.js';

/** Where `hack/install-csi.sh --csi-sanity` builds csi-sanity (outside the repo). */
export const CSI_SANITY = join(process.env.BLOCKMIRROR_CACHE ?? join(homedir(), '.cache', 'blockmirror'), 'csi', 'bin', 'csi-sanity');

/**
 * A long-running `blockmirror` CSI command (csi-lab-driver, csi-proxy) from the built CLI,
 * ready once it logs `readyMessage`. Its log is kept for failure messages.
 */
export class CsiProcess {
  readonly child: ChildProcess;
  readonly log: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(child: ChildProcess, log: string[], exited: CsiProcess['exited']) {
    this.child = child;
    this.log = log;
    this.exited = exited;
  }

  static async start(args: string[], readyMessage: string, readyTimeoutMs = 30_000): Promise<CsiProcess> {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const log: string[] = [];
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    let partial = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${args[0]} not ready within ${readyTimeoutMs} ms; log:\n${log.join('\n')}`)), readyTimeoutMs);
      child.stdout!.on('data', (chunk: Buffer) => {
        partial += chunk.toString('utf8');
        const lines = partial.split('\n');
        partial = lines.pop()!;
        for (const line of lines) {
          log.push(line);
          try {
            if ((JSON.parse(line) as { message?: string }).message === readyMessage) {
              clearTimeout(timer);
              resolve();
            }
          } catch {
            // not JSON: kept in the log
          }
        }
      });
      child.stderr!.on('data', (c: Buffer) => log.push(c.toString('utf8')));
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${args[0]} exited early (code ${code}, signal ${signal}); log:\n${log.join('\n')}`));
      });
    });
    return new CsiProcess(child, log, exited);
  }

  /** SIGTERM and wait for the exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

export interface SanityResult {
  code: number | null;
  passed: number;
  failed: number;
  skipped: number;
  output: string;
  seconds: number;
}

/** Reads ginkgo's summary line: "SUCCESS! -- 33 Passed | 0 Failed | 1 Pending | 69 Skipped". */
export function parseSanitySummary(output: string): { passed: number; failed: number; skipped: number } {
  const m = /(\d+) Passed \| (\d+) Failed \| \d+ Pending \| (\d+) Skipped/.exec(output);
  if (m === null) return { passed: 0, failed: -1, skipped: 0 };
  return { passed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3]) };
}

/**
 * Takes down what a failed CSI test may leave on the host under `dir`: mounts (newest
 * first) and loop devices over its image files. Best effort: it runs in afterAll.
 */
export async function releaseHostResources(dir: string): Promise<void> {
  const mountPoints = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\040/g, ' '))
    .filter((p) => p.startsWith(dir + '/'));
  for (const m of mountPoints.reverse()) await run('umount', ['-l', m]).catch(() => undefined);
  const loops = await run('losetup', ['--list', '--noheadings', '--raw', '--output', 'NAME,BACK-FILE']).catch(() => ({ stdout: '' }));
  for (const line of loops.stdout.split('\n')) {
    const [name, file] = line.split(' ');
    if (name && file?.startsWith(dir + '/')) await run('losetup', ['--detach', name]).catch(() => undefined);
  }
}
