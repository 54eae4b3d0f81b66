import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { runOk } from './run-cli.js';
import { REPO_ROOT } from './sidecar-process.js';
import { waitFor } from './wait-for.js';

const WRITER = join(REPO_ROOT, 'examples', 'database', 'sqlite-writer.mjs');

/** A commit the writer printed: acknowledged (SQLite's synchronous=FULL commit returned). */
export interface Commit {
  seq: number;
  /** When the writer printed it, after the commit returned. */
  printedAt: number;
}

/**
 * examples/database/sqlite-writer.mjs on the host (under Node 24, for node:sqlite),
 * printing every commit: the test knows each acknowledged transaction and when it was
 * acknowledged, up to a crash.
 */
export class DatabaseWriter {
  readonly commits: Commit[] = [];
  /** The sequence number it resumed after (what it found in the database). */
  resumedAfter = -1;
  #output = '';
  readonly #child: ChildProcess;
  readonly #exited: Promise<number | null>;

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.#exited = new Promise((r) => child.once('exit', (code) => r(code)));
    let partial = '';
    child.stdout!.on('data', (c: Buffer) => {
      const now = Date.now();
      partial += c.toString('utf8');
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        this.#output += `${line}\n`;
        const committed = /^committed (\d+) /.exec(line);
        if (committed) this.commits.push({ seq: Number(committed[1]), printedAt: now });
        const resumed = /resuming after (\d+)/.exec(line);
        if (resumed) this.resumedAfter = Number(resumed[1]);
      }
    });
    child.stderr!.on('data', (c: Buffer) => (this.#output += c.toString('utf8')));
  }

  /** Node 24's path (hack/node-lts.sh installs it into the cache once). */
  static async node(): Promise<string> {
    return (await runOk('bash', [join(REPO_ROOT, 'hack', 'node-lts.sh')], { timeoutMs: 300_000 })).trim();
  }

  static start(node: string, dbPath: string, commitsPerSecond: number): DatabaseWriter {
    return new DatabaseWriter(spawn(node, [WRITER, dbPath, String(commitsPerSecond), '0'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  /** The last acknowledged commit (0 if none yet). */
  get last(): number {
    return this.commits.at(-1)?.seq ?? 0;
  }

  get output(): string {
    return this.#output;
  }

  /** Waits until it has opened the database; answers the sequence number it resumes after. */
  async started(timeoutMs = 60_000): Promise<number> {
    await waitFor('the writer to open its database', () => {
      if (this.#child.exitCode !== null) throw new Error(`the writer exited ${this.#child.exitCode}: ${this.#output}`);
      return this.resumedAfter >= 0;
    }, { timeoutMs, intervalMs: 50 });
    return this.resumedAfter;
  }

  async waitFor(seq: number, timeoutMs = 60_000): Promise<void> {
    await waitFor(`the writer to commit ${seq} (last ${this.last})`, () => {
      if (this.#child.exitCode !== null) throw new Error(`the writer exited ${this.#child.exitCode}: ${this.#output}`);
      return this.last >= seq;
    }, { timeoutMs, intervalMs: 50 });
  }

  /** SIGTERM: it finishes the commit under way, closes the database and exits 0. */
  async stop(): Promise<number> {
    this.#child.kill('SIGTERM');
    const code = await this.#exited;
    if (code !== 0) throw new Error(`the writer exited ${code}: ${this.#output}`);
    return this.last;
  }

  /** What a crash leaves: the process killed wherever it is. */
  async kill(): Promise<void> {
    this.#child.kill('SIGKILL');
    await this.#exited;
  }
}
