import { Server, ServerCredentials } from '@grpc/grpc-js';
import { lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname, isAbsolute } from 'node:path';
import { InvalidArgumentError } from '../errors.js';

export interface CsiEndpoint {
  /** The address for grpc-js (`unix:///abs/path`). */
  address: string;
  socketPath: string;
}

/**
 * A CSI endpoint as the kubelet and the CSI sidecars spell it: `unix:///abs/path.sock`
 * (also `unix:/abs/path.sock` or a bare absolute path). CSI runs over Unix sockets only.
 */
export function parseCsiEndpoint(endpoint: string): CsiEndpoint {
  let path = endpoint;
  if (path.startsWith('unix://')) path = path.slice('unix://'.length);
  else if (path.startsWith('unix:')) path = path.slice('unix:'.length);
  if (!isAbsolute(path)) throw new InvalidArgumentError(`CSI endpoint ${JSON.stringify(endpoint)} is not unix:///absolute/path`);
  return { address: `unix://${path}`, socketPath: path };
}

/**
 * Binds `server` on a CSI endpoint. A socket file left by an earlier run is removed
 * first (a Unix socket cannot be bound over); anything else at the path is refused.
 */
export async function listenCsi(server: Server, endpoint: string): Promise<CsiEndpoint> {
  const ep = parseCsiEndpoint(endpoint);
  await mkdir(dirname(ep.socketPath), { recursive: true });
  const st = await lstat(ep.socketPath).catch(() => undefined);
  if (st !== undefined) {
    if (!st.isSocket()) throw new InvalidArgumentError(`${ep.socketPath} exists and is not a socket`);
    await unlink(ep.socketPath);
  }
  await new Promise<void>((resolve, reject) => server.bindAsync(ep.address, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  return ep;
}

/** Stops accepting calls, lets running ones finish for a while, then cuts them. */
export function shutdownServer(server: Server, graceMs = 5000): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(() => server.forceShutdown(), graceMs);
    server.tryShutdown(() => {
      clearTimeout(t);
      resolve();
    });
  });
}
