import { dirname, join } from 'node:path';
import { pluginRegistrationPin } from '../grpc/load-proto.js';
import { resolveGoModuleDir } from '../grpc/resolve-go-module-dir.js';

export interface ResolvePluginRegistrationProtoDirOptions {
  /** The go command (default `go` on PATH). */
  go?: string;
  signal?: AbortSignal;
}

/**
 * The folder holding the kubelet's plugin registration api.proto: in the pinned
 * k8s.io/kubelet module in the Go module cache (fetched if the cache lacks it). Hosts
 * without Go (the images) pass the folder explicitly instead (`--plugin-registration-proto-dir`).
 */
export async function resolvePluginRegistrationProtoDir(opts: ResolvePluginRegistrationProtoDirOptions = {}): Promise<string> {
  const pin = pluginRegistrationPin();
  const dir = await resolveGoModuleDir(pin, pin.file, { ...opts, flag: '--plugin-registration-proto-dir' });
  return join(dir, dirname(pin.file));
}
