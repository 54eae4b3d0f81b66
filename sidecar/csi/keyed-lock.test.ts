import { describe, expect, it } from '@jest/globals';
import { KeyedLock } from './keyed-lock.js';

describe('KeyedLock', () => {
  it('runs work on one key in order and on different keys side by side', async () => {
    const lock = new KeyedLock();
    const events: string[] = [];
    let openA!: () => void;
    const gateA = new Promise<void>((r) => (openA = r));
    const a1 = lock.run('a', async () => {
      events.push('a1 start');
      await gateA;
      events.push('a1 end');
    });
    const a2 = lock.run('a', async () => {
      events.push('a2');
      return 2;
    });
    const b = lock.run('b', async () => {
      events.push('b');
    });
    await b;
    expect(events).toEqual(['a1 start', 'b']);
    openA();
    expect(await a2).toBe(2);
    await a1;
    expect(events).toEqual(['a1 start', 'b', 'a1 end', 'a2']);
  });

  it('goes on after a failure', async () => {
    const lock = new KeyedLock();
    await expect(lock.run('a', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await lock.run('a', async () => 'ok')).toBe('ok');
  });
});
