import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname, isAbsolute } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';

/** A control address on a Unix socket: `unix:///abs/path` (grpc-js' form). */
export function isUnixControlAddress(address: string): boolean {
  return address.startsWith('unix:');
}

/** The socket path of `unix:///abs/path`, `unix:/abs/path` or a bare absolute path. */
export function controlSocketPath(address: string): string {
  const path = address.replace(/^unix:(\/\/)?/, '');
  if (!isAbsolute(path)) throw new InvalidArgumentError(`control socket ${JSON.stringify(address)} is not unix:///absolute/path`);
  return path;
}

/**
 * Makes the control socket's directory root-only and clears a socket an earlier run
 * left there (a Unix socket cannot be bound over). The socket has no TLS: whoever can
 * enter the directory may create and delete pairs, so the directory must belong to this
 * process's user with mode 0700, and a directory another user owns is refused rather than
 * taken over. Returns grpc-js' address for it.
 */
export async function prepareControlSocket(socket: string): Promise<string> {
  const path = controlSocketPath(socket);
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  const uid = process.getuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid) throw new FailedPreconditionError(`control socket directory ${dir} is not a directory owned by uid ${uid}`);
  // A hostPath the kubelet made is 0755: narrowed, not trusted as it is.
  if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
  const existing = await lstat(path).catch(() => undefined);
  if (existing !== undefined) {
    if (!existing.isSocket()) throw new InvalidArgumentError(`${path} exists and is not a socket`);
    await unlink(path);
  }
  return `unix://${path}`;
}
