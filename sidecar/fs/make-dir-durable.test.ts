import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDirDurable } from './make-dir-durable.js';

describe('makeDirDurable', () => {
  it('creates the missing levels and refuses a directory outside the root', async () => {
    const root = mkdtempSync(join(tmpdir(), 'bm-mkdir-'));
    try {
      await makeDirDurable(join(root, 'pairs', 'db', 'journal'), root);
      expect(statSync(join(root, 'pairs', 'db', 'journal')).isDirectory()).toBe(true);
      // Again, all present: only the fsyncs.
      await makeDirDurable(join(root, 'pairs', 'db'), root);
      await makeDirDurable(root, root);
      await expect(makeDirDurable(join(root, '..', 'elsewhere'), root)).rejects.toThrow(/not inside/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
