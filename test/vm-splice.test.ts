import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './helpers/run-cli.js';
import { REPO_ROOT } from './helpers/sidecar-process.js';
import { resolveCsiProtoDir } from '../sidecar/csi/resolve-csi-proto-dir.js';

// The device-mapper splice on a real kernel: hack/vm.sh boots Debian's kernel in qemu with
// the host's root shared read-only, and the scripts under test/vm run inside it against
// two virtio disks (the primary's and the secondary's volume). The suites share one file
// so their VMs run one after the other: two TCG guests at once starve a 2-core machine.

let dir = '';
let helper = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bm-vm-'));
  const r = await run('bash', [join(REPO_ROOT, 'hack', 'build-nbd-helper.sh')], { timeoutMs: 300_000 });
  expect(r.code).toBe(0);
  helper = r.stdout.trim();
}, 320_000);

afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** Sparse disk images of `mib` MiB for the VM, one per name. */
async function disks(script: string, names: string[], mib: number): Promise<string[]> {
  const files = names.map((n) => join(dir, `${script}.${n}.img`));
  for (const f of files) {
    await writeFile(f, '');
    await truncate(f, mib * 1024 * 1024);
  }
  return files;
}

/** Boots the VM with `files` as /dev/vda, vdb... and runs test/vm/<script> in it. */
async function boot(files: string[], script: string, timeoutS: number, extraArgs = ''): Promise<{ code: number | null; lines: string[] }> {
  const r = await run(
    'env',
    [
      `VM_CONSOLE_LOG=${join(dir, `${script}.console.log`)}`,
      `VM_TIMEOUT=${timeoutS}`,
      'bash',
      join(REPO_ROOT, 'hack', 'vm.sh'),
      'run',
      ...files.flatMap((f) => ['--disk', f]),
      '--',
      `sh ${join(REPO_ROOT, 'test', 'vm', script)} ${REPO_ROOT} ${helper} ${extraArgs}`,
    ],
    { timeoutMs: (timeoutS + 20) * 1000 },
  );
  // Shown in the jest output: the numbers the closing note quotes.
  process.stdout.write(r.stdout);
  // Trailing blanks come from the console the guest's output shares, not from the scripts.
  return { code: r.code, lines: r.stdout.split('\n').map((l) => l.trimEnd()).filter((l) => /^(splice|crash|csi|cut): /.test(l)) };
}

/** Boots the VM with two fresh disks of `mib` MiB and runs test/vm/<script> in it. */
async function inVm(script: string, mib: number, timeoutS: number, extraArgs = ''): Promise<{ code: number | null; lines: string[] }> {
  const files = await disks(script, ['a', 'b'], mib);
  try {
    return await boot(files, script, timeoutS, extraArgs);
  } finally {
    for (const f of files) await rm(f, { force: true });
  }
}

describe('the device-mapper splice in a VM', () => {
  it('attaches replication under a mounted ext4 with a writer running, reaches a byte-identical secondary, detaches, fsck clean; writes made detached survive an unstage', async () => {
    const { code, lines } = await inVm('splice.sh', 16, 600);
    expect(lines.filter((l) => l.includes('FAILED'))).toEqual([]);
    expect(lines).toEqual([
      expect.stringContaining('ext4 mounted on /dev/mapper/blockmirror-pv1'),
      // Pairs hold their devices: the secondary's exclusively, the spliced primary's
      // beside the splice's own dm-era and nothing else.
      'splice: secondary pair holds /dev/vdb: a dm table over it was refused',
      'splice: primary pair refused while bm-foreign held /dev/vda beside the splice',
      "splice: primary pair on /dev/vda, held by the splice's blockmirror-pv1-era",
      // The top device maps the tap, a queueing multipath over the kernel NBD device (major 43).
      expect.stringMatching(/attached: 0 \d+ linear \d+:\d+ 0 -> 0 \d+ multipath .* 43:0 /),
      expect.stringContaining('initial copy done while the writer ran: InSync'),
      expect.stringMatching(/secondary byte-identical to the primary after \d+ writer passes/),
      // Back on the volume, through dm-era that records writes while detached.
      expect.stringMatching(/detached: 0 \d+ linear \d+:\d+ 0/),
      expect.stringContaining('never remounted while attached and detached; fsck clean'),
      expect.stringContaining('unstaged'),
      // A pause (detach), writes, the pod gone (unstage), back (stage, attach): the writes
      // only the first staging's dm-era saw still reach the secondary.
      expect.stringMatching(/staged again and attached: \d+ bytes written while detached, carried over the unstage; secondary byte-identical/),
    ]);
    expect(Number(/(\d+) bytes written while detached/.exec(lines.join('\n'))?.[1])).toBeGreaterThan(0);
    expect(code).toBe(0);
  }, 640_000);

  it('survives kill -9 of the primary sidecar: a stall, then a restart or the tracked direct path; nothing lost, no full resync', async () => {
    const mib = 256;
    const { code, lines } = await inVm('splice-crash.sh', mib, 1200);
    expect(lines.filter((l) => l.includes('FAILED'))).toEqual([]);
    expect(lines).toEqual([
      expect.stringContaining('attached under the supervisor, InSync'),
      expect.stringMatching(/A: kill -9 of the sidecar: writer stalled up to \d+ s, went on after the restart, no write error/),
      expect.stringMatching(/A: resync after the restart shipped \d+ of \d+ bytes/),
      expect.stringContaining('B: sidecar down past'),
      expect.stringContaining('B: the writer goes on on the direct path, no write error'),
      expect.stringMatching(/B: sidecar back, attached again: dm-era recorded \d+ bytes .* resync shipped \d+ of \d+ bytes/),
      expect.stringMatching(/secondary byte-identical; all \d+ acknowledged writes present/),
      expect.stringContaining('detached; fsck clean'),
    ]);
    // Neither resync is a full copy: a quarter of the volume is far more than the writer
    // touches (64 files of 64 KiB plus ext4 metadata, in 4 MiB activity-log extents).
    const shipped = lines.flatMap((l) => [...l.matchAll(/shipped (\d+) of (\d+) bytes/g)].map((m) => Number(m[1]) / Number(m[2])));
    expect(shipped).toHaveLength(2);
    for (const ratio of shipped) expect(ratio).toBeLessThan(0.25);
    const era = Number(/dm-era recorded (\d+) bytes/.exec(lines.join('\n'))![1]);
    expect(era).toBeGreaterThan(0);
    expect(era).toBeLessThan(mib * 1024 * 1024 * 0.25);
    expect(code).toBe(0);
  }, 1_260_000);

  it('survives power cuts of the node, attached and detached: staged again, nothing acknowledged lost, what the lost dm-era saw reaches the secondary', async () => {
    // The same disks through three boots; the first two end in a power cut.
    const files = await disks('splice-power-cut.sh', ['a', 'b', 'state'], 64);
    try {
      const first = await boot(files, 'splice-power-cut.sh', 600, '1');
      expect(first.lines).toEqual([expect.stringMatching(/^cut: 1: attached, InSync, \d+ files acknowledged; power cut$/)]);
      // Cut: the VM never reported an exit status.
      expect(first.code).not.toBe(0);

      const second = await boot(files, 'splice-power-cut.sh', 600, '2');
      expect(second.lines).toEqual([
        // Every write through the tap the pair had marked itself: no era device to keep.
        expect.stringMatching(/^cut: 2: back from a cut while attached: staged again \(dm-era kept: false\) and attached, \d+ bytes written untracked; \d+ acknowledged files present; secondary byte-identical$/),
        expect.stringMatching(/^cut: 2: detached \(dm-era recording\), \d+ files acknowledged; power cut$/),
      ]);
      expect(second.code).not.toBe(0);

      const third = await boot(files, 'splice-power-cut.sh', 600, '3');
      expect(third.lines).toEqual([
        expect.stringMatching(/^cut: 3: back from a cut while direct: staged again \(dm-era kept: true\) and attached, \d+ bytes written untracked; \d+ acknowledged files present; secondary byte-identical$/),
        'cut: 3: detached; fsck clean',
      ]);
      // The 16 files of 64 KiB the writer went round while detached, written past the
      // lost era device only (the mount's own writes after the cut are a few blocks).
      expect(Number(/(\d+) bytes written untracked/.exec(third.lines[0]!)?.[1])).toBeGreaterThanOrEqual(16 * 64 * 1024);
      expect(third.code).toBe(0);
    } finally {
      for (const f of files) await rm(f, { force: true });
    }
  }, 1_900_000);

  it('through the CSI node proxy: an opted-in volume is staged on /dev/mapper/blockmirror-<pv> and replicated, one not opted in is untouched', async () => {
    // The VM sees the host's Go module cache read-only: the folder is resolved here.
    const csiProto = await resolveCsiProtoDir();
    const { code, lines } = await inVm('csi-proxy.sh', 64, 900, csiProto);
    expect(lines.filter((l) => l.includes('FAILED'))).toEqual([]);
    expect(lines).toEqual([
      expect.stringMatching(/opted-in volume: staged from \/dev\/mapper\/blockmirror-\S+ \(0 \d+ linear \d+:\d+ 0\), over the driver's \/dev\/loop\d+/),
      expect.stringMatching(/volume without opt-in: staged from \/dev\/loop\d+, untouched/),
      expect.stringContaining('both published'),
      expect.stringContaining('unstage refused while attached'),
      expect.stringContaining('secondary byte-identical; detached'),
      expect.stringContaining('no device-mapper or loop device left'),
    ]);
    expect(code).toBe(0);
  }, 940_000);
});
