import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FailedPreconditionError } from '../errors.js';
import type { GoModulePin } from './load-proto.js';

export interface ResolveGoModuleDirOptions {
  /** The go command (default `go` on PATH). */
  go?: string;
  signal?: AbortSignal;
  /** The flag a caller without Go passes the folder with instead (for the error message). */
  flag: string;
}

/**
 * The folder of a pinned Go module in the Go module cache, as `go mod download -json`
 * reports it (fetching the module if the cache lacks it), checked to hold `file`.
 * Protos that are dependencies rather than copies (csi.proto, the kubelet's api.proto)
 * are found this way.
 */
export async function resolveGoModuleDir(pin: GoModulePin, file: string, opts: ResolveGoModuleDirOptions): Promise<string> {
  const ref = `${pin.module}@${pin.version}`;
  const stdout = await new Promise<string>((resolve, reject) => {
    // Outside any module: a go.mod in the caller's cwd must not change what is resolved.
    execFile(opts.go ?? 'go', ['mod', 'download', '-json', ref], { cwd: tmpdir(), encoding: 'utf8', timeout: 120_000, ...(opts.signal ? { signal: opts.signal } : {}) }, (err, out, stderr) => {
      if (err) reject(new FailedPreconditionError(`cannot resolve ${ref} with go (pass ${opts.flag} instead): ${stderr.trim() || err.message}`));
      else resolve(out);
    });
  });
  const dir = (JSON.parse(stdout) as { Dir?: string }).Dir;
  if (dir === undefined || dir === '') throw new FailedPreconditionError(`go mod download gave no folder for ${ref}`);
  await access(join(dir, file)).catch(() => {
    throw new FailedPreconditionError(`no ${file} in ${dir}`);
  });
  return dir;
}
