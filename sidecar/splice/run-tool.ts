import { execFile } from 'node:child_process';
import { BlockmirrorError } from '../errors.js';

/** A node tool (dmsetup, losetup, the NBD netlink helper) failed; `stderr` says why. */
export class ToolError extends BlockmirrorError {
  readonly tool: string;
  readonly stderr: string;
  constructor(tool: string, args: readonly string[], stderr: string, cause?: unknown) {
    super('UNAVAILABLE', `${tool} ${args.join(' ')} failed: ${stderr.trim() || String(cause)}`, { cause });
    this.name = 'ToolError';
    this.tool = tool;
    this.stderr = stderr;
  }
}

export interface RunToolOptions {
  signal?: AbortSignal;
  /** Kills the tool after this long; device-mapper calls never need more. */
  timeoutMs?: number;
}

/** Runs a tool without a shell and gives its stdout; a non-zero exit is a ToolError. */
export function runTool(tool: string, args: readonly string[], opts: RunToolOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      tool,
      args,
      { encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20, ...(opts.signal ? { signal: opts.signal } : {}) },
      (err, stdout, stderr) => (err ? reject(new ToolError(tool, args, stderr, err)) : resolve(stdout)),
    );
  });
}
