import { spawn } from 'node:child_process';
import { BlockmirrorError } from '../errors.js';

/** A node tool (dmsetup, losetup, mount, mkfs, the NBD helper) failed; `stderr` says why. */
export class ToolError extends BlockmirrorError {
  readonly tool: string;
  readonly exitCode: number | undefined;
  readonly stderr: string;
  constructor(tool: string, args: readonly string[], exitCode: number | undefined, stderr: string, cause?: unknown) {
    super('INTERNAL', `${tool} ${args.join(' ')} failed${exitCode !== undefined ? ` (exit ${exitCode})` : ''}: ${stderr.trim() || String(cause)}`, { cause });
    this.name = 'ToolError';
    this.tool = tool;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

export interface RunToolOptions {
  signal?: AbortSignal;
  /** Kills the tool after this long (mkfs of a large volume is the slowest caller). */
  timeoutMs?: number;
  /**
   * Descriptors of this process the tool gets as its fds 3, 4, …: it reaches a file
   * through /proc/self/fd/3, the very inode this process opened, never a path that may
   * have been swapped since.
   */
  fds?: readonly number[];
}

/**
 * Runs a tool without a shell and gives its stdout; a non-zero exit is a ToolError. The
 * tool runs in its own process group: a stop signal to the sidecar's group (the
 * supervisor's) must not kill a dmsetup between its suspend and its resume, which would
 * leave the volume suspended and its application stalled.
 */
export function runTool(tool: string, args: readonly string[], opts: RunToolOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe', ...(opts.fds ?? [])], detached: true, ...(opts.signal ? { signal: opts.signal } : {}) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    // Pipes, as asked above (the extra fds widen spawn's type to nullable streams).
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    let failure: Error | undefined;
    child.once('error', (e) => {
      failure = e;
      // Never started (not found, not executable): no close may follow.
      if (child.pid === undefined) {
        clearTimeout(timer);
        reject(new ToolError(tool, args, undefined, '', e));
      }
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (failure === undefined && code === 0) return resolve(stdout);
      reject(new ToolError(tool, args, code ?? undefined, stderr, failure ?? new Error(signal ? `killed by ${signal}` : `exit ${code}`)));
    });
  });
}
