import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { BuiltImages } from './build-images.js';
import type { ClusterSite } from './cluster-site.js';
import { run, type RunResult } from './run-cli.js';
import { REPO_ROOT } from './sidecar-process.js';

const SCRIPT = join(REPO_ROOT, 'hack', 'site-chart.sh');
const PROBES = ['startupProbe', 'livenessProbe', 'readinessProbe'] as const;

/** What hack/site-chart.sh install prints. */
export interface ChartInstall {
  release: string;
  namespace: string;
  /** The values file it wrote for the site (local images, hostNetwork, paths, TLS). */
  values: string;
  tlsSecret: string;
  /** The CA every site's sidecar certificate is signed by. */
  ca: string;
  /** node address:peer port of each node's sidecar: what a remote primary dials. */
  peerEndpoints: string[];
}

export interface SiteChartOptions {
  /** ca.crt and ca.key, shared by the sites that replicate together (made when missing). */
  caDir: string;
  /** hack/build-images.sh's images (default: the script runs it itself). */
  images?: BuiltImages;
  /** Extra `helm upgrade --install` arguments, e.g. ['--set', 'operator.pollMs=500']. */
  helmArgs?: string[];
}

/** One pod of the chart, as the tests look at it. */
export interface ChartPod {
  name: string;
  uid: string;
  component: string;
  node: string;
  ready: boolean;
  restartCount: number;
  containerID: string;
  image: string;
  imagePullPolicy: string;
  serviceAccountName: string;
  args: string[];
  env: string[];
  /** Every container's name, in the pod's order (the first is the component's own). */
  containers: string[];
  /** The probes its container has: startupProbe, livenessProbe, readinessProbe. */
  probes: string[];
  /** The previous container's end, once it was restarted. */
  lastTerminated?: { exitCode: number; reason?: string };
}

interface PodJson {
  metadata: { name: string; uid: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec: { nodeName?: string; serviceAccountName?: string; containers: ({ name: string; image: string; imagePullPolicy: string; args?: string[]; env?: { name: string }[] } & Partial<Record<(typeof PROBES)[number], object>>)[] };
  status: {
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; containerID?: string; restartCount: number; lastState?: { terminated?: { exitCode: number; reason?: string } } }[];
  };
}

/**
 * The blockmirror chart installed by helm on a real site (hack/site-chart.sh): its pods
 * run on the site's kubelet from the locally built images. `install` again with other
 * helm arguments is an upgrade.
 */
export class SiteChart {
  readonly site: ClusterSite;
  readonly info: ChartInstall;
  /** Progress lines of the last install or upgrade. */
  readonly log: string;

  private constructor(site: ClusterSite, info: ChartInstall, log: string) {
    this.site = site;
    this.info = info;
    this.log = log;
  }

  /** `helm upgrade --install`, then waits until every workload of the chart is rolled out and Ready. */
  static async install(site: ClusterSite, opts: SiteChartOptions): Promise<SiteChart> {
    const args = [SCRIPT, 'install', site.info.dir, '--ca', opts.caDir];
    if (opts.images !== undefined) {
      const file = join(site.info.dir, 'chart', 'images.json');
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, JSON.stringify(opts.images));
      args.push('--images', file);
    }
    if (opts.helmArgs !== undefined) args.push('--', ...opts.helmArgs);
    const r = await run('bash', args, { timeoutMs: 1_200_000 });
    if (r.code !== 0) throw new Error(`site ${site.name}: hack/site-chart.sh install exited ${r.code}\n${r.stderr}`);
    return new SiteChart(site, JSON.parse(r.stdout) as ChartInstall, r.stderr);
  }

  /** `helm uninstall` (the CRD and the pairs stay). */
  async uninstall(): Promise<string> {
    const r = await run('bash', [SCRIPT, 'uninstall', this.site.info.dir, '--release', this.info.release, '--namespace', this.info.namespace], { timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`site ${this.site.name}: hack/site-chart.sh uninstall exited ${r.code}\n${r.stderr}`);
    return r.stderr;
  }

  /** helm with the site's kubeconfig (built beside its kubectl by hack/install-kube.sh). */
  helm(args: string[]): Promise<RunResult> {
    return run(join(dirname(this.site.info.kubectl), 'helm'), ['--kubeconfig', this.site.info.kubeconfig, ...args], { timeoutMs: 120_000 });
  }

  /** kubectl in the release's namespace. */
  kubectlOk(args: string[]): Promise<string> {
    return this.site.kubectlOk(['-n', this.info.namespace, ...args]);
  }

  /** The last `tail` lines of every container of the release's pods, each under a header: for a failure's report. */
  async logs(tail = 60): Promise<string> {
    const out: string[] = [];
    for (const p of await this.pods()) {
      // A pod on the TCG guest answers slowly: its log is worth the wait, never a hang.
      const r = await this.site.kubectl(['-n', this.info.namespace, 'logs', p.name, '--all-containers', '--prefix', `--tail=${tail}`], { timeoutMs: 60_000 });
      out.push(`--- ${this.site.name}: pod ${p.name} on ${p.node}`, (r.stdout + r.stderr).trimEnd());
    }
    return out.join('\n');
  }

  /** The release's pods (those being deleted left out), by component label. */
  async pods(component?: 'operator' | 'sidecar'): Promise<ChartPod[]> {
    const selector = [`app.kubernetes.io/instance=${this.info.release}`, ...(component !== undefined ? [`app.kubernetes.io/component=${component}`] : [])].join(',');
    const list = JSON.parse(await this.kubectlOk(['get', 'pods', '-l', selector, '-o', 'json'])) as { items: PodJson[] };
    return list.items
      .filter((p) => p.metadata.deletionTimestamp === undefined)
      .map((p) => {
        const c = p.spec.containers[0]!;
        // Statuses need not follow the spec's order: the component's own container by name.
        const s = p.status.containerStatuses?.find((x) => x.name === c.name);
        const last = s?.lastState?.terminated;
        return {
          name: p.metadata.name,
          uid: p.metadata.uid,
          component: p.metadata.labels?.['app.kubernetes.io/component'] ?? '',
          node: p.spec.nodeName ?? '',
          ready: p.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') ?? false,
          restartCount: s?.restartCount ?? 0,
          containerID: (s?.containerID ?? '').replace(/^containerd:\/\//, ''),
          image: c.image,
          imagePullPolicy: c.imagePullPolicy,
          serviceAccountName: p.spec.serviceAccountName ?? '',
          args: c.args ?? [],
          env: (c.env ?? []).map((e) => e.name),
          containers: p.spec.containers.map((x) => x.name),
          probes: PROBES.filter((k) => c[k] !== undefined),
          ...(last !== undefined ? { lastTerminated: { exitCode: last.exitCode, ...(last.reason !== undefined ? { reason: last.reason } : {}) } } : {}),
        };
      });
  }

  /** The host PID of a running container of the node's containerd (`ctr tasks ls`). */
  async containerPid(containerID: string): Promise<number> {
    const line = (await this.site.ctr(['tasks', 'ls'])).split('\n').find((l) => l.split(/\s+/)[0] === containerID);
    const [, pid, status] = line?.split(/\s+/) ?? [];
    if (status !== 'RUNNING') throw new Error(`container ${containerID} is not running on ${this.site.name} (${line ?? 'no task'})`);
    return Number(pid);
  }
}
