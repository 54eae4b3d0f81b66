import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClusterSite, LocalImage, SiteInfo } from './cluster-site.js';
import { run, runOk } from './run-cli.js';
import { REPO_ROOT } from './sidecar-process.js';

const VM_NODE_SCRIPT = join(REPO_ROOT, 'hack', 'site-vm-node.sh');

export interface VmNodeOptions {
  /** The node's index in its site (2..199; default 2): address 10.127.<site>.<index>. */
  index?: number;
  /** Images imported into the guest's containerd (the pause image always is). */
  images?: LocalImage[];
  /** Deadline for the VM to boot and its node to go Ready (TCG is slow). */
  timeoutMs?: number;
  /** The guest runs the lab CSI driver and external-provisioner (--lab-csi). */
  labCsi?: boolean;
  /** Guest ports reaching a host address: `PORT=HOST:HPORT`, at 10.127.<site>.250:PORT (--forward). */
  forwards?: string[];
  /** Guest ports the site reaches at the node's address, e.g. a hostNetwork sidecar's control port (--expose). */
  expose?: number[];
}

/**
 * A node of a running site whose kubelet and containerd run in the VM test bed
 * (hack/site-vm-node.sh): Debian's kernel, with device-mapper and NBD, under qemu.
 */
export class VmNode {
  readonly node: SiteInfo['nodes'][number];
  /** Where the node's files live on the host (guest log, component logs under out/). */
  readonly dir: string;
  /** Progress lines `up` printed, the guest's phase timings among them. */
  readonly upLog: string;

  private constructor(node: SiteInfo['nodes'][number], dir: string, upLog: string) {
    this.node = node;
    this.dir = dir;
    this.upLog = upLog;
  }

  /**
   * Joins `site` with a VM node and waits until it is Ready. Track `VmNode.down(site.info.dir)`
   * (or the site's own down) first: a join that fails half-way is undone by it too.
   */
  static async join(site: ClusterSite, opts: VmNodeOptions = {}): Promise<VmNode> {
    const index = opts.index ?? 2;
    const args = [VM_NODE_SCRIPT, 'up', site.info.dir, '--index', String(index)];
    for (const image of opts.images ?? []) args.push('--import', image.archive);
    if (opts.labCsi === true) args.push('--lab-csi');
    for (const f of opts.forwards ?? []) args.push('--forward', f);
    for (const p of opts.expose ?? []) args.push('--expose', String(p));
    const timeoutMs = opts.timeoutMs ?? 900_000;
    const r = await run('env', [`VM_NODE_TIMEOUT=${Math.floor(timeoutMs / 1000) - 30}`, 'bash', ...args], { timeoutMs });
    if (r.code !== 0) throw new Error(`site ${site.name}: hack/site-vm-node.sh up exited ${r.code}\n${r.stderr}`);
    const info = JSON.parse(await readFile(join(site.info.dir, 'site.json'), 'utf8')) as SiteInfo;
    const node = info.nodes.find((n) => n.vm === true && n.name === `${site.name}-node${index}`);
    if (!node) throw new Error(`site ${site.name}: site.json lists no VM node ${index}`);
    return new VmNode(node, join(site.info.dir, `vm-node${index}`), r.stderr);
  }

  /** The guest's own record of its kernel's features (written at boot: dmsetup version). */
  kernelFeatures(): Promise<string> {
    return readFile(join(this.dir, 'out', 'kernel-features'), 'utf8');
  }

  /** Stops the site's VM nodes (or only `index`) and removes their files and Node objects. */
  static async down(siteDir: string, index?: number): Promise<void> {
    const args = [VM_NODE_SCRIPT, 'down', siteDir];
    if (index !== undefined) args.push('--index', String(index));
    await runOk('bash', args, { timeoutMs: 120_000 });
  }

}
