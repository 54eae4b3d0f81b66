import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './helpers/run-cli.js';
import { REPO_ROOT } from './helpers/sidecar-process.js';

// The device-mapper splice on a real kernel: hack/vm.sh boots Debian's kernel in qemu with
// the host's root shared read-only, and test/vm/splice.sh runs inside it against two
// virtio disks (the primary's and the secondary's volume).

let dir: string | undefined;
afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('the device-mapper splice in a VM', () => {
  it('attaches replication under a mounted ext4 with a writer running, reaches a byte-identical secondary, detaches, fsck clean', async () => {
    dir = await mkdtemp(join(tmpdir(), 'bm-vm-'));
    const [a, b] = [join(dir, 'primary.img'), join(dir, 'secondary.img')];
    for (const f of [a, b]) {
      await writeFile(f, '');
      await truncate(f, 16 * 1024 * 1024);
    }
    const console = join(dir, 'console.log');
    const r = await run('env', [`VM_CONSOLE_LOG=${console}`, 'VM_TIMEOUT=300', 'bash', join(REPO_ROOT, 'hack', 'vm.sh'), 'run', '--disk', a, '--disk', b, '--', `sh ${join(REPO_ROOT, 'test', 'vm', 'splice.sh')} ${REPO_ROOT}`], {
      timeoutMs: 320_000,
    });
    const steps = r.stdout.split('\n').filter((l) => l.startsWith('splice: '));
    expect(steps.filter((l) => l.includes('FAILED'))).toEqual([]);
    expect(steps).toEqual([
      expect.stringContaining('ext4 mounted on /dev/mapper/blockmirror-pv1'),
      expect.stringMatching(/attached: 0 \d+ linear 43:0 0/),
      expect.stringContaining('initial copy done while the writer ran: InSync'),
      expect.stringMatching(/secondary byte-identical to the primary after \d+ writer passes/),
      expect.stringMatching(/detached: 0 \d+ linear 254:0 0/),
      expect.stringContaining('never remounted while attached and detached; fsck clean'),
    ]);
    expect(r.code).toBe(0);
  }, 340_000);
});
