import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pairToJson, type PairJson } from '../../sidecar/control/pair-json.js';
import { ControlClient } from '../../sidecar/control/control-client.js';
import { runCli } from './run-cli.js';
import { waitFor } from './wait-for.js';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO_ROOT, 'dist', 'sidecar', 'cli', 'main.js');

export interface SidecarAddresses {
  control: string;
  peer: string;
  metrics: string;
}

export interface StartOptions {
  stateDir: string;
  /** Extra CLI flags for `blockmirror sidecar`. */
  args?: string[];
  /**
   * --allow-volume-prefix entries. Default: the temp dir, where every test keeps its volume
   * files (and loop devices over them); a test of the path policy passes its own.
   */
  allowVolumePrefixes?: string[];
  /** Deadline for the "sidecar ready" log line. */
  readyTimeoutMs?: number;
}

/**
 * A real `blockmirror sidecar` process (the built CLI in dist/), on loopback ports
 * picked by the kernel. Its JSON log is kept for assertions.
 */
export class SidecarProcess {
  readonly child: ChildProcess;
  readonly addresses: SidecarAddresses;
  readonly stateDir: string;
  readonly #log: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #client: ControlClient | undefined;

  private constructor(child: ChildProcess, addresses: SidecarAddresses, stateDir: string, log: string[], exited: SidecarProcess['exited']) {
    this.child = child;
    this.addresses = addresses;
    this.stateDir = stateDir;
    this.#log = log;
    this.exited = exited;
  }

  static async start(opts: StartOptions): Promise<SidecarProcess> {
    const allow = (opts.allowVolumePrefixes ?? [tmpdir()]).flatMap((p) => ['--allow-volume-prefix', p]);
    const args = [CLI, 'sidecar', '--state-dir', opts.stateDir, '--control-listen', '127.0.0.1:0', '--peer-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', ...allow, ...(opts.args ?? [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const log: string[] = [];
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    let partial = '';
    const addresses = await new Promise<SidecarAddresses>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sidecar not ready within deadline; log:\n${log.join('\n')}`)), opts.readyTimeoutMs ?? 20_000);
      const onData = (chunk: Buffer): void => {
        partial += chunk.toString('utf8');
        const lines = partial.split('\n');
        partial = lines.pop()!;
        for (const line of lines) {
          log.push(line);
          try {
            const j = JSON.parse(line) as { message?: string } & SidecarAddresses;
            if (j.message === 'sidecar ready') {
              clearTimeout(timer);
              resolve({ control: j.control, peer: j.peer, metrics: j.metrics });
            }
          } catch {
            // not JSON: keep it in the log
          }
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (c: Buffer) => log.push(c.toString('utf8')));
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`sidecar exited early (code ${code}, signal ${signal}); log:\n${log.join('\n')}`));
      });
    });
    return new SidecarProcess(child, addresses, opts.stateDir, log, exited);
  }

  get log(): string[] {
    return this.#log;
  }

  /** Runs `blockmirror ARGS --control <this sidecar>`; returns stdout, throws on failure. */
  async cli(...args: string[]): Promise<string> {
    const r = await runCli([...args, '--control', this.addresses.control]);
    if (r.code !== 0) throw new Error(`blockmirror ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  async status(name: string): Promise<PairStatusJson> {
    return JSON.parse(await this.cli('pair', 'status', name, '-o', 'json')) as PairStatusJson;
  }

  /**
   * The same status through the control API from this process: for tight polling loops,
   * where a CLI process per call would cost more than what is measured.
   */
  async rpcStatus(name: string): Promise<PairStatusJson> {
    this.#client ??= new ControlClient(this.addresses.control);
    return pairToJson(await this.#client.getPair(name));
  }

  /** Polls the pair's status until `ok` holds; on timeout the error names what and the last status. */
  async waitForPair(name: string, what: string, ok: (s: PairStatusJson) => boolean, timeoutMs = 30_000): Promise<PairStatusJson> {
    let last: PairStatusJson | undefined;
    try {
      return await waitFor(
        what,
        async () => {
          last = await this.rpcStatus(name);
          return ok(last) ? last : undefined;
        },
        { timeoutMs, intervalMs: 100 },
      );
    } catch (err) {
      const brief = last && { state: last.state, outOfSyncBytes: last.outOfSyncBytes, lastError: last.lastError };
      throw new Error(`${(err as Error).message}; last status of ${name}: ${JSON.stringify(brief)}`, { cause: err });
    }
  }

  /** SIGTERM and wait for the exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.#client?.close();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }

  /** kill -9 and wait for the exit. */
  async kill9(): Promise<void> {
    this.#client?.close();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

// The tests read what the CLI prints: its own type, not a hand-kept copy.
export type PairStatusJson = PairJson;
