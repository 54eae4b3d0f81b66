import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, runOk, type RunResult } from './run-cli.js';
import { REPO_ROOT } from './sidecar-process.js';

const SITE_SCRIPT = join(REPO_ROOT, 'hack', 'site.sh');
const TEST_IMAGES_SCRIPT = join(REPO_ROOT, 'hack', 'build-test-images.sh');

/** What hack/site.sh writes to DIR/site.json. */
export interface SiteInfo {
  name: string;
  dir: string;
  /** The site's network namespace (under /run/netns). */
  netns: string;
  kubeconfig: string;
  apiServer: string;
  serviceCIDR: string;
  podCIDR: string;
  sandboxImage: string;
  containerdSocket: string;
  /** The kubectl built with the site's components. */
  kubectl: string;
  /** `vm`: the node runs in the VM test bed (hack/site-vm-node.sh), its kubelet root dir in the guest. */
  nodes: { name: string; address: string; podCIDR: string; kubeletRootDir: string; vm?: boolean }[];
}

/**
 * An image archive and the fully qualified name it imports as (the shape
 * hack/build-test-images.sh and hack/build-images.sh print).
 */
export interface LocalImage {
  image: string;
  archive: string;
}

export interface ClusterSiteOptions {
  /** The pod sandbox image (default: the pause image of hack/build-images.sh). */
  sandbox?: LocalImage;
  /** Images imported into the node's containerd before the kubelet starts. */
  images?: LocalImage[];
}

/** The images of hack/build-test-images.sh (built once, cached by their inputs). */
export async function testImages(): Promise<{ busybox: LocalImage }> {
  const out = await runOk('bash', [TEST_IMAGES_SCRIPT], { timeoutMs: 300_000 });
  return JSON.parse(out) as { busybox: LocalImage };
}

/**
 * One real Kubernetes site (hack/site.sh): control plane, controller-manager, scheduler
 * and a node with a kubelet and containerd, in its own network namespace.
 */
export class ClusterSite {
  readonly info: SiteInfo;
  /** Progress and phase timing lines `up` printed. */
  readonly upLog: string;

  private constructor(info: SiteInfo, upLog: string) {
    this.info = info;
    this.upLog = upLog;
  }

  /**
   * Starts the site in `dir`. Track `ClusterSite.down(dir)` in the test's CleanupStack
   * before calling this: a start that fails or times out half-way is stopped by it too.
   */
  static async start(name: string, dir: string, opts: ClusterSiteOptions = {}): Promise<ClusterSite> {
    const args = [SITE_SCRIPT, 'up', dir, '--name', name];
    if (opts.sandbox) args.push('--sandbox-image', opts.sandbox.image, '--sandbox-archive', opts.sandbox.archive);
    for (const image of opts.images ?? []) args.push('--import', image.archive);
    const r = await run('bash', args, { timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`site ${name}: hack/site.sh up exited ${r.code}\n${r.stderr}`);
    const info = JSON.parse(await readFile(join(dir, 'site.json'), 'utf8')) as SiteInfo;
    return new ClusterSite(info, r.stderr);
  }

  get name(): string {
    return this.info.name;
  }

  get node(): SiteInfo['nodes'][number] {
    return this.info.nodes[0]!;
  }

  kubectl(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return run(this.info.kubectl, ['--kubeconfig', this.info.kubeconfig, ...args], { timeoutMs: 60_000, ...opts });
  }

  async kubectlOk(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.kubectl(args, opts);
    if (r.code !== 0) throw new Error(`[site ${this.name}] kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  /** `ctr` against the node's containerd, in the namespace the kubelet's pods use. */
  ctr(args: string[]): Promise<string> {
    return runOk('ctr', ['--address', this.info.containerdSocket, '--namespace', 'k8s.io', ...args]);
  }

  /** Imports image archives into the running node's containerd. */
  async importImages(images: LocalImage[]): Promise<void> {
    await runOk('bash', [SITE_SCRIPT, 'import', this.info.dir, ...images.map((i) => i.archive)], { timeoutMs: 120_000 });
  }

  /** A command in the site's network namespace (as a process on its node would run it). */
  inNetns(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    return run('nsenter', [`--net=/run/netns/${this.info.netns}`, '--', cmd, ...args], opts);
  }

  /** Stops the site in `dir` and removes all it made (nothing to do when none is up). */
  static async down(dir: string): Promise<void> {
    await runOk('bash', [SITE_SCRIPT, 'down', dir], { timeoutMs: 120_000 });
  }

  async stop(): Promise<void> {
    await ClusterSite.down(this.info.dir);
  }
}
