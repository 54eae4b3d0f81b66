import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dmsetup } from './dmsetup.js';

/** What the node splice needs from the node, one check each. */
export type SpliceCheckName = 'device-mapper' | 'dm-multipath' | 'dm-era' | 'nbd' | 'nbd-helper';

export interface SpliceCheck {
  name: SpliceCheckName;
  ok: boolean;
  /** What was found, or what is missing and what to do. */
  detail: string;
}

/**
 * Whether this node can put a volume behind the tap (device-mapper splice over the
 * kernel's NBD client). Probed once when the sidecar starts: the kernel's modules and
 * the sidecar's flags do not change under a running process.
 */
export interface SpliceCapability {
  capable: boolean;
  checks: SpliceCheck[];
  /** The failed checks' details, "; "-separated; empty when capable. */
  reason: string;
}

export interface SpliceProbeOptions {
  /** dmsetup (`version`, `targets`). */
  dm: Pick<Dmsetup, 'version' | 'targets'>;
  /** The blockmirror-nbd helper the sidecar was given; absent: the splice is off. */
  nbdHelper?: string;
  /** Where the node's /dev is (the chart mounts the host's). */
  devDir?: string;
  /** Where the node's /sys is. */
  sysDir?: string;
}

/**
 * Probes the node: the kernel's device-mapper driver, /dev/mapper/control and a
 * `dmsetup version` that reaches the kernel,
 * the multipath and era targets loaded (the chart asks for dm_multipath and dm_era to be
 * loaded: a sidecar in a container cannot load modules), the kernel's NBD client, and
 * the helper that drives it. Never throws: a failed check is the answer.
 */
export async function probeSpliceCapability(opts: SpliceProbeOptions): Promise<SpliceCapability> {
  const dev = opts.devDir ?? '/dev';
  const sys = opts.sysDir ?? '/sys';
  const checks: SpliceCheck[] = [];
  const control = join(dev, 'mapper', 'control');
  // The kernel's own word: a /dev/mapper/control node can outlive (or predate) the driver.
  const driver = join(sys, 'class', 'misc', 'device-mapper');
  let targets: string | undefined;
  if (!(await exists(driver))) {
    checks.push({ name: 'device-mapper', ok: false, detail: `no device-mapper: the kernel has none (${driver} missing; load dm_mod on the node)` });
  } else if (!(await exists(control))) {
    checks.push({ name: 'device-mapper', ok: false, detail: `no device-mapper: ${control} missing (the node's /dev not mounted?)` });
  } else {
    try {
      const version = await opts.dm.version();
      targets = await opts.dm.targets();
      checks.push({ name: 'device-mapper', ok: true, detail: driverVersion(version) });
    } catch (err) {
      checks.push({ name: 'device-mapper', ok: false, detail: `no device-mapper: dmsetup cannot reach the kernel (${firstLine((err as Error).message)})` });
    }
  }
  // Without device-mapper the targets are moot: its check already says what to do.
  if (targets !== undefined) {
    const loaded = new Set(targets.split('\n').map((l) => l.trim().split(/\s+/)[0]));
    for (const [name, target, module] of [
      ['dm-multipath', 'multipath', 'dm_multipath'],
      ['dm-era', 'era', 'dm_era'],
    ] as const) {
      checks.push(loaded.has(target) ? { name, ok: true, detail: `${target} target loaded` } : { name, ok: false, detail: `no ${name} target: not in dmsetup targets (load ${module} on the node)` });
    }
  }
  const nbd = join(sys, 'module', 'nbd');
  checks.push((await exists(nbd)) ? { name: 'nbd', ok: true, detail: 'nbd loaded' } : { name: 'nbd', ok: false, detail: `no NBD client: ${nbd} missing (load nbd on the node)` });
  if (opts.nbdHelper === undefined) {
    checks.push({ name: 'nbd-helper', ok: false, detail: 'node splice off: the sidecar was started without --nbd-helper' });
  } else if (!(await exists(opts.nbdHelper))) {
    checks.push({ name: 'nbd-helper', ok: false, detail: `node splice off: the NBD helper ${opts.nbdHelper} is missing` });
  } else {
    checks.push({ name: 'nbd-helper', ok: true, detail: opts.nbdHelper });
  }
  const failed = checks.filter((c) => !c.ok);
  return { capable: failed.length === 0, checks, reason: failed.map((c) => c.detail).join('; ') };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** "Driver version: 4.47.0" out of `dmsetup version`, or its first line. */
function driverVersion(out: string): string {
  const driver = /^Driver version:\s*(\S+)/m.exec(out);
  return driver !== null ? `device-mapper driver ${driver[1]}` : firstLine(out);
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0] ?? '';
}
