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

/** Boots the VM with two fresh disks of `mib` MiB and runs test/vm/<script> in it. */
async function inVm(script: string, mib: number, timeoutS: number, extraArgs = ''): Promise<{ code: number | null; lines: string[] }> {
  const [a, b] = [join(dir, `${script}.a.img`), join(dir, `${script}.b.img`)];
  for (const f of [a, b]) {
    await writeFile(f, '');
    await truncate(f, mib * 1024 * 1024);
  }
  const r = await run(
    'env',
    [
      `VM_CONSOLE_LOG=${join(dir, `${script}.console.log`)}`,
      `VM_TIMEOUT=${timeoutS}`,
      'bash',
      join(REPO_ROOT, 'hack', 'vm.sh'),
      'run',
      '--disk',
      a,
      '--disk',
      b,
      '--',
      `sh ${join(REPO_ROOT, 'test', 'vm', script)} ${REPO_ROOT} ${helper} ${extraArgs}`,
    ],
    { timeoutMs: (timeoutS + 20) * 1000 },
  );
  await rm(a, { force: true });
  await rm(b, { force: true });
  // Shown in the jest output: the numbers the closing note quotes.
  process.stdout.write(r.stdout);
  // Trailing blanks come from the console the guest's output shares, not from the scripts.
  return { code: r.code, lines: r.stdout.split('\n').map((l) => l.trimEnd()).filter((l) => /^(splice|crash|csi): /.test(l)) };
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
