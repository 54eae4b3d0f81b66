import { csiSpecPin } from '../grpc/load-proto.js';
import { resolveGoModuleDir } from '../grpc/resolve-go-module-dir.js';

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
export function resolveCsiProtoDir(opts: ResolveCsiProtoDirOptions = {}): Promise<string> {
  return resolveGoModuleDir(csiSpecPin(), 'csi.proto', { ...opts, flag: '--csi-proto-dir' });
}
