import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function files(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out.set(relative(dir, p), readFileSync(p, 'utf8'));
  }
  return out;
}

describe('generated proto types', () => {
  it('match what hack/gen-proto.mjs produces from proto/ (no drift)', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'bm-proto-'));
    try {
      execFileSync(process.execPath, [join(root, 'hack', 'gen-proto.mjs'), tmp], { stdio: 'pipe' });
      const fresh = files(tmp);
      const committed = files(join(root, 'proto', 'gen'));
      expect([...committed.keys()].sort()).toEqual([...fresh.keys()].sort());
      for (const [name, text] of fresh) expect({ name, text: committed.get(name) }).toEqual({ name, text });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
