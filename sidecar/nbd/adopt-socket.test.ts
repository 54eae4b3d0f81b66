import { describe, expect, it } from '@jest/globals';
import { connect, createServer, type Socket } from 'node:net';
import { adoptSocket } from './adopt-socket.js';
import { SlabPool } from './slab-pool.js';

describe('adoptSocket', () => {
  it('reads into slab memory on this Node version, with large reads and nothing lost', async () => {
    const pool = new SlabPool();
    const received: Buffer[] = [];
    let fast = false;
    let slabReads = 0;
    const done = new Promise<Socket>((resolve) => {
      const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (accepted) => {
        const adopted = adoptSocket(
          accepted,
          pool,
          (chunk, slab) => {
            if (slab !== null) slabReads++;
            received.push(Buffer.from(chunk));
          },
          { allowHalfOpen: true },
        );
        fast = adopted.fast;
        adopted.socket.on('end', () => {
          adopted.socket.end();
          server.close();
          resolve(adopted.socket);
        });
      });
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        const c = connect(port, '127.0.0.1', () => {
          for (let i = 0; i < 64; i++) c.write(Buffer.alloc(256 * 1024, i));
          c.end();
        });
      });
    });
    await done;
    // The fast path must be active: if a Node upgrade breaks it, this fails loudly
    // instead of the export silently falling back to 64 KiB reads.
    expect(fast).toBe(true);
    expect(slabReads).toBe(received.length);
    const all = Buffer.concat(received);
    expect(all.length).toBe(64 * 256 * 1024);
    for (let i = 0; i < 64; i++) expect(all[i * 256 * 1024 + 1000]).toBe(i);
  });
});
