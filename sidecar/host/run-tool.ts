import { execFile } from 'node:child_process';
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
}

/** Runs a tool without a shell and gives its stdout; a non-zero exit is a ToolError. */
export function runTool(tool: string, args: readonly string[], opts: RunToolOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      tool,
      args,
      { encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20, ...(opts.signal ? { signal: opts.signal } : {}) },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const code = (err as { code?: unknown }).code;
        reject(new ToolError(tool, args, typeof code === 'number' ? code : undefined, stderr, err));
      },
    );
  });
}
