import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FailedPreconditionError } from '../errors.js';
import { csiSpecPin } from '../grpc/load-proto.js';

export interface ResolveCsiProtoDirOptions {
  /** The go command (default `go` on PATH). */
  go?: string;
  signal?: AbortSignal;
}

/**
 * The folder holding csi.proto: the pinned spec module in the Go module cache, as
 * `go mod download -json` reports it (fetching the module if the cache lacks it). Hosts
 * without Go (the images) pass the folder explicitly instead (`--csi-proto-dir`).
 */
export async function resolveCsiProtoDir(opts: ResolveCsiProtoDirOptions = {}): Promise<string> {
  const pin = csiSpecPin();
  const ref = `${pin.module}@${pin.version}`;
  const stdout = await new Promise<string>((resolve, reject) => {
    // Outside any module: a go.mod in the caller's cwd must not change what is resolved.
    execFile(opts.go ?? 'go', ['mod', 'download', '-json', ref], { cwd: tmpdir(), encoding: 'utf8', timeout: 120_000, ...(opts.signal ? { signal: opts.signal } : {}) }, (err, out, stderr) => {
      if (err) reject(new FailedPreconditionError(`cannot resolve ${ref} with go (pass --csi-proto-dir instead): ${stderr.trim() || err.message}`));
      else resolve(out);
    });
  });
  const dir = (JSON.parse(stdout) as { Dir?: string }).Dir;
  if (dir === undefined || dir === '') throw new FailedPreconditionError(`go mod download gave no folder for ${ref}`);
  await access(join(dir, 'csi.proto')).catch(() => {
    throw new FailedPreconditionError(`no csi.proto in ${dir}`);
  });
  return dir;
}
