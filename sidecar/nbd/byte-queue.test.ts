import { describe, expect, it } from '@jest/globals';
import { ByteQueue } from './byte-queue.js';
import { SlabPool } from './slab-pool.js';

describe('ByteQueue', () => {
  it('takes across chunk boundaries and keeps the rest', () => {
    const q = new ByteQueue();
    q.push(Buffer.from('abc'));
    q.push(Buffer.from('defg'));
    q.push(Buffer.from('h'));
    expect(q.length).toBe(8);
    expect(q.peek(5).toString()).toBe('abcde');
    expect(q.take(2).toString()).toBe('ab');
    expect(q.take(4).toString()).toBe('cdef');
    expect(q.length).toBe(2);
    expect(q.take(2).toString()).toBe('gh');
    expect(q.length).toBe(0);
  });

  it('takeChunks returns the received buffers without copying', () => {
    const a = Buffer.from('0123');
    const b = Buffer.from('4567');
    const q = new ByteQueue();
    q.push(a);
    q.push(b);
    const { chunks } = q.takeChunks(6);
    expect(Buffer.concat(chunks).toString()).toBe('012345');
    expect(chunks[0]!.buffer).toBe(a.buffer);
    expect(q.take(2).toString()).toBe('67');
  });

  it('skip drops at most what it has', () => {
    const q = new ByteQueue();
    q.push(Buffer.from('abcdef'));
    expect(q.skip(4)).toBe(4);
    expect(q.skip(10)).toBe(2);
    expect(q.length).toBe(0);
    expect(q.take(0).length).toBe(0);
  });

  it('keeps a slab out of the pool while any of its bytes are queued or taken', () => {
    const pool = new SlabPool({ slabBytes: 64, minTail: 8, keep: 4 });
    const slab = pool.nextSlab(null);
    slab.retain(); // the reader's reference
    slab.buf.write('abcdefghij', 0);
    slab.used = 10;
    const q = new ByteQueue();
    q.push(slab.buf.subarray(0, 10), slab);
    slab.release(); // the reader moved on to another slab
    expect(pool.freeSlabs).toBe(0);
    const payload = q.takeChunks(6); // split chunk: the request and the queue both hold it
    expect(Buffer.concat(payload.chunks).toString()).toBe('abcdef');
    expect(q.take(4).toString()).toBe('ghij');
    expect(pool.freeSlabs).toBe(0);
    payload.release();
    payload.release(); // idempotent
    expect(pool.freeSlabs).toBe(1);
    expect(slab.refs).toBe(0);
  });

  it('clear releases what is still queued', () => {
    const pool = new SlabPool({ slabBytes: 64, minTail: 8 });
    const slab = pool.nextSlab(null);
    const q = new ByteQueue();
    q.push(slab.buf.subarray(0, 5), slab);
    q.push(slab.buf.subarray(5, 9), slab);
    expect(slab.refs).toBe(2);
    q.clear();
    expect(slab.refs).toBe(0);
    expect(pool.freeSlabs).toBe(1);
  });
});
