import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './sidecar-process.js';

/** A power cut: lose every unsynced write, or (torn) a seeded random subset of them. */
export type CutRequest = { mode: 'drop' } | { mode: 'torn'; seed: number };

/** What a cut took away; a test can assert that it did something. */
export interface CutResult {
  mode: 'drop' | 'torn';
  /** Unsynced 512-byte sectors lost, in bytes. */
  droppedBytes: number;
  /** Unsynced sectors that survived (torn only), in bytes. */
  keptBytes: number;
  /** Directory entries (creations, removals, renames) reverted to the durable set. */
  droppedEntries: number;
  /** Files whose unsynced size change was lost. */
  revertedSizes: number;
  /** Files whose unsynced size change survived (torn only). */
  keptSizes: number;
  /** Inodes no durable entry named: creations the cut undid. */
  freedInodes: number;
}

export interface CrashFsStats {
  /** The size limit; 0: none. */
  capacityBytes: number;
  /** Current contents of reachable files: what the capacity limits and df shows as used. */
  allocatedBytes: number;
  /** Unsynced 512-byte sectors, in bytes. */
  dirtyBytes: number;
  /** Directory entries differing from their durable set. */
  dirtyEntries: number;
  /** Files with unsynced data or size. */
  dirtyInodes: number;
  /** Page memory the filesystem holds (current and durable contents, shared pages once). */
  memoryBytes: number;
  inodes: number;
  cuts: number;
}

export interface CrashFsMountOptions {
  /** Size limit; writes needing new pages past it fail with ENOSPC. Default: none. */
  capacityBytes?: number;
  /** Deadline for the ready line (default 20 s; the first call may also build the binary). */
  readyTimeoutMs?: number;
  signal?: AbortSignal;
  /** Log every FUSE request to the process's stderr (kept in `log`). */
  debug?: boolean;
}

export type CrashFsErrorCode = 'CRASHFS_BUILD' | 'CRASHFS_MOUNT' | 'CRASHFS_CONTROL' | 'CRASHFS_UNMOUNT';

export class CrashFsError extends Error {
  readonly code: CrashFsErrorCode;
  constructor(code: CrashFsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CrashFsError';
    this.code = code;
  }
}

const CONTROL_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 10_000;

let binary: Promise<string> | undefined;

/** The built blockmirror-crashfs (hack/build-crashfs.sh: cached by source hash, built once per process). */
export function crashFsBinary(): Promise<string> {
  binary ??= new Promise<string>((resolve, reject) => {
    execFile('bash', [join(REPO_ROOT, 'hack', 'build-crashfs.sh')], { timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new CrashFsError('CRASHFS_BUILD', `hack/build-crashfs.sh failed: ${err.message}\n${stderr}`, { cause: err }));
        return;
      }
      // The stable name is a symlink another worktree may repoint: hold on to its target.
      realpath(stdout.trim()).then(resolve, (e: unknown) => reject(new CrashFsError('CRASHFS_BUILD', `no binary at ${stdout.trim()}`, { cause: e })));
    });
  });
  binary.catch(() => (binary = undefined));
  return binary;
}

/** Whether `dir` (an absolute, resolved path) is a mount point now. */
async function isMountPoint(dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return info.split('\n').some((line) => line.split(' ')[4] !== undefined && unescape(line.split(' ')[4]) === dir);
}

function run(cmd: string, args: string[]): Promise<{ ok: boolean; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: EXIT_TIMEOUT_MS }, (err, _stdout, stderr) => resolve({ ok: !err, stderr: err && !stderr ? err.message : stderr }));
  });
}

/**
 * blockmirror-crashfs mounted on a directory: an in-memory filesystem that keeps every
 * write not yet fsync'd/fdatasync'd (and every directory change not yet made durable by
 * an fsync of the directory) apart, and throws it away at `cut()`, as a power cut
 * does to a disk with a volatile write cache. See test/crash-fs.test.ts for the semantics.
 */
export class CrashFs {
  /** The mount point (resolved). */
  readonly dir: string;
  readonly controlPath: string;
  readonly child: ChildProcess;
  readonly #controlDir: string;
  readonly #log: string[];
  readonly #exited: Promise<void>;
  #unmounted: Promise<void> | undefined;
  #running = true;

  private constructor(dir: string, controlDir: string, child: ChildProcess, log: string[], exited: Promise<void>) {
    this.dir = dir;
    this.#controlDir = controlDir;
    this.controlPath = join(controlDir, 'control.sock');
    this.child = child;
    this.#log = log;
    this.#exited = exited;
    void exited.then(() => (this.#running = false));
  }

  /** Mounts a fresh, empty filesystem on `dir` (an existing directory). */
  static async mount(dir: string, opts: CrashFsMountOptions = {}): Promise<CrashFs> {
    opts.signal?.throwIfAborted();
    const bin = await crashFsBinary();
    const mountDir = await realpath(dir);
    // The socket lives outside the mount (and within the 108-byte limit of Unix socket paths).
    const controlDir = await mkdtemp(join(tmpdir(), 'crashfs-'));
    const args = ['--mount', mountDir, '--control', join(controlDir, 'control.sock'), '--watch-stdin'];
    if (opts.capacityBytes !== undefined) args.push('--capacity', String(opts.capacityBytes));
    if (opts.debug) args.push('--debug');
    // stdin stays an open pipe: when this process dies, EOF makes the filesystem unmount itself.
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const log: string[] = [];
    // 'error' without 'exit': it never started.
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    child.stderr!.on('data', (c: Buffer) => log.push(c.toString('utf8')));
    const fs = new CrashFs(mountDir, controlDir, child, log, exited);
    try {
      await new Promise<void>((resolve, reject) => {
        let partial = '';
        const fail = (why: string): void => reject(new CrashFsError('CRASHFS_MOUNT', `blockmirror-crashfs on ${mountDir}: ${why}; log:\n${log.join('')}`));
        const timer = setTimeout(() => fail('not ready within deadline'), opts.readyTimeoutMs ?? 20_000);
        const onAbort = (): void => fail('aborted');
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        const done = (): void => {
          clearTimeout(timer);
          opts.signal?.removeEventListener('abort', onAbort);
        };
        child.stdout!.on('data', (chunk: Buffer) => {
          partial += chunk.toString('utf8');
          const lines = partial.split('\n');
          partial = lines.pop()!;
          for (const line of lines) {
            try {
              if ((JSON.parse(line) as { ready?: boolean }).ready === true) {
                done();
                resolve();
              }
            } catch {
              log.push(line);
            }
          }
        });
        child.once('error', (err) => {
          done();
          fail(err.message);
        });
        void exited.then(() => {
          done();
          fail(`exited early (code ${child.exitCode}, signal ${child.signalCode})`);
        });
      });
    } catch (err) {
      await fs.unmount().catch(() => undefined);
      throw err;
    }
    return fs;
  }

  /** The process's stderr (and --debug output). */
  get log(): string[] {
    return this.#log;
  }

  /**
   * Cuts the power: afterwards only what was durable remains (torn: plus a subset of the
   * rest). Kill the processes using the filesystem first and wait for them to exit: only
   * then has the kernel handed over every write they issued. One that keeps running sees
   * its open files go back to the durable state under it, which no real power cut does.
   */
  async cut(req: CutRequest): Promise<CutResult> {
    if (req.mode === 'torn' && (!Number.isSafeInteger(req.seed) || req.seed < 0)) {
      throw new CrashFsError('CRASHFS_CONTROL', `torn cut: seed ${req.seed} must be a non-negative integer`);
    }
    return (await this.#command(req.mode === 'drop' ? 'cut drop' : `cut torn ${req.seed}`)) as unknown as CutResult;
  }

  /** Sets the size limit (0: none). Below what is allocated, new pages fail with ENOSPC until freed. */
  async setCapacity(bytes: number): Promise<void> {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new CrashFsError('CRASHFS_CONTROL', `capacity ${bytes} must be a non-negative integer`);
    await this.#command(`capacity ${bytes}`);
  }

  async stats(): Promise<CrashFsStats> {
    return (await this.#command('stats')) as unknown as CrashFsStats;
  }

  /** Makes everything durable at once, as if every file and directory had been fsync'd (a test's checkpoint). */
  async syncAll(): Promise<void> {
    await this.#command('sync');
  }

  #command(line: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const sock = createConnection(this.controlPath);
      let buf = '';
      const fail = (why: string, cause?: unknown): void => {
        sock.destroy();
        reject(new CrashFsError('CRASHFS_CONTROL', `crashfs ${this.dir}: ${line}: ${why}`, { cause }));
      };
      sock.setTimeout(CONTROL_TIMEOUT_MS, () => fail('no reply within deadline'));
      sock.on('error', (err) => fail(err.message, err));
      sock.on('data', (c: Buffer) => {
        buf += c.toString('utf8');
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        sock.end();
        let reply: Record<string, unknown> & { ok?: boolean; error?: string };
        try {
          reply = JSON.parse(buf.slice(0, nl)) as typeof reply;
        } catch (err) {
          fail(`unreadable reply ${JSON.stringify(buf.slice(0, nl))}`, err);
          return;
        }
        if (reply.ok !== true) fail(reply.error ?? 'refused');
        else resolve(reply);
      });
      sock.on('connect', () => sock.write(`${line}\n`));
    });
  }

  /**
   * Unmounts and stops the process; safe to call more than once and after anything went
   * wrong (a killed process, a busy mount): escalates to SIGKILL and a lazy unmount, so
   * no mount is left behind.
   */
  unmount(): Promise<void> {
    this.#unmounted ??= this.#unmount();
    return this.#unmounted;
  }

  async #unmount(): Promise<void> {
    const exitedWithin = async (ms: number): Promise<boolean> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
      const ok = await Promise.race([this.#exited.then(() => true), timeout]);
      clearTimeout(timer);
      return ok;
    };
    if (this.#running) {
      this.child.kill('SIGTERM');
      if (!(await exitedWithin(EXIT_TIMEOUT_MS))) {
        this.child.kill('SIGKILL');
        await exitedWithin(EXIT_TIMEOUT_MS);
      }
    }
    this.child.stdin?.destroy();
    let failure: string | undefined;
    if (await isMountPoint(this.dir)) {
      // The process died without unmounting (kill -9): the mount answers ENOTCONN until removed.
      const r = await run('umount', ['-l', this.dir]);
      if (!r.ok && (await isMountPoint(this.dir))) failure = `umount -l ${this.dir}: ${r.stderr.trim()}`;
    }
    await rm(this.#controlDir, { recursive: true, force: true });
    if (failure) throw new CrashFsError('CRASHFS_UNMOUNT', failure);
  }
}

/** Mounts a fresh CrashFs on PARENT/NAME (created here) and has `cleanup` unmount it. */
export async function mountCrashFs(parent: string, name: string, cleanup: { track(what: string, release: () => Promise<void>): unknown }): Promise<CrashFs> {
  await mkdir(join(parent, name));
  const fs = await CrashFs.mount(join(parent, name));
  cleanup.track(`crashfs ${name}`, () => fs.unmount());
  return fs;
}
