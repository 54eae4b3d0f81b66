import { describe, expect, it } from '@jest/globals';
import { waitFor } from './wait-for.js';

describe('waitFor', () => {
  it('returns the first value the check gives', async () => {
    let n = 0;
    await expect(waitFor('three', () => (++n >= 3 ? n : undefined), { intervalMs: 1 })).resolves.toBe(3);
  });

  it("a timeout names what it waited for, the check's last error and what onTimeout shows", async () => {
    const err = waitFor('the moon', () => Promise.reject(new Error('no moon yet')), { timeoutMs: 20, intervalMs: 5, onTimeout: () => Promise.resolve('--- logs\nthe sidecar said nothing') });
    await expect(err).rejects.toThrow('timed out waiting for the moon: no moon yet\n--- logs\nthe sidecar said nothing');
  });

  it('diagnostics that fail do not hide the timeout', async () => {
    const err = waitFor('the moon', () => false, { timeoutMs: 20, intervalMs: 5, onTimeout: () => Promise.reject(new Error('kubectl gone')) });
    await expect(err).rejects.toThrow('timed out waiting for the moon\n(the diagnostics failed too: kubectl gone)');
  });
});
