import { Socket } from 'node:net';
import type { Slab, SlabPool } from './slab-pool.js';

/** A received run of bytes and the slab that holds it (null: an ordinary buffer). */
export type OnChunk = (chunk: Buffer, slab: Slab | null) => void;

interface HandleOwner {
  _handle?: object | null;
}

/**
 * Re-wraps an accepted socket's handle so reads go into slab memory (`onread`), which
 * Node offers only when a Socket is constructed, not on server-accepted sockets. The
 * server must accept with `pauseOnConnect` so no read happens before the swap. If this
 * Node's internals do not allow it, the socket keeps emitting ordinary 'data' chunks.
 * A test asserts the fast path is active on the Node versions we support.
 */
export function adoptSocket(accepted: Socket, pool: SlabPool, onChunk: OnChunk, opts: { allowHalfOpen: boolean }): { socket: Socket; fast: boolean } {
  const owner = accepted as unknown as HandleOwner;
  const handle = owner._handle;
  if (handle === undefined || handle === null) {
    accepted.on('data', (c: Buffer) => onChunk(c, null));
    accepted.resume();
    return { socket: accepted, fast: false };
  }
  let slab: Slab | null = null;
  const socket = new Socket({
    handle,
    allowHalfOpen: opts.allowHalfOpen,
    readable: true,
    writable: true,
    onread: {
      buffer: () => {
        const next = pool.nextSlab(slab);
        if (next !== slab) {
          // The reader's own reference keeps the slab out of the pool while it fills.
          next.retain();
          slab?.release();
          slab = next;
        }
        return next.buf.subarray(next.used);
      },
      callback: (n: number) => {
        const s = slab!;
        const view = s.buf.subarray(s.used, s.used + n);
        s.used += n;
        onChunk(view, s);
        return true;
      },
    },
  } as ConstructorParameters<typeof Socket>[0]);
  socket.once('close', () => {
    slab?.release();
    slab = null;
  });
  // The original wrapper no longer owns the handle; destroying it only settles the
  // server's connection count.
  owner._handle = null;
  accepted.destroy();
  return { socket, fast: true };
}
