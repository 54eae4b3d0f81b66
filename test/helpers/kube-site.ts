import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, runOk, type RunResult } from './run-cli.js';
import { CLI, REPO_ROOT } from './sidecar-process.js';

const CONTROL_PLANE = join(REPO_ROOT, 'hack', 'control-plane.sh');
export const OPERATOR_NAMESPACE = 'blockmirror-system';
export const CHART = join(REPO_ROOT, 'charts', 'blockmirror');
/** The release name the tests install the chart as; its objects are named after it. */
export const RELEASE = 'blockmirror';

export interface KubeSiteOptions {
  /**
   * 'helm': `helm install` the chart (CRD, RBAC, workloads the API server stores but no
   * kubelet runs); 'crd': only `kubectl apply` the CRD; 'none': nothing.
   */
  install?: 'helm' | 'crd' | 'none';
  /** Extra `helm install` flags. */
  helmArgs?: string[];
}

/**
 * One site's real control plane (etcd + kube-apiserver on loopback, started by
 * hack/control-plane.sh), with the CRD and the operator's namespace installed.
 */
export class KubeSite {
  readonly name: string;
  readonly dir: string;
  readonly kubeconfig: string;
  readonly kubectlPath: string;
  readonly helmPath: string;

  private constructor(name: string, dir: string, kubeconfig: string, bin: string) {
    this.name = name;
    this.dir = dir;
    this.kubeconfig = kubeconfig;
    this.kubectlPath = join(bin, 'kubectl');
    this.helmPath = join(bin, 'helm');
  }

  static async start(name: string, dir: string, opts: KubeSiteOptions = {}): Promise<KubeSite> {
    const kubeconfig = (await runOk('bash', [CONTROL_PLANE, 'up', dir], { timeoutMs: 120_000 })).trim();
    const bin = (await runOk('bash', [CONTROL_PLANE, 'bin'])).trim();
    const site = new KubeSite(name, dir, kubeconfig, bin);
    await site.kubectlOk(['apply', '-f', join(REPO_ROOT, 'examples', 'namespace.yaml')]);
    const install = opts.install ?? 'crd';
    if (install === 'crd') await site.kubectlOk(['apply', '-f', join(REPO_ROOT, 'crds')]);
    if (install === 'helm') await site.helmOk(['install', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE, '--wait=false', ...(opts.helmArgs ?? [])]);
    if (install !== 'none') await site.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/replicationpairs.blockmirror.io']);
    return site;
  }

  helm(args: string[]): Promise<RunResult> {
    return run(this.helmPath, ['--kubeconfig', this.kubeconfig, ...args], { timeoutMs: 120_000 });
  }

  async helmOk(args: string[]): Promise<string> {
    const r = await this.helm(args);
    if (r.code !== 0) throw new Error(`[site ${this.name}] helm ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  /**
   * A kubeconfig that authenticates as `serviceAccount` of the operator's namespace with
   * a token from the TokenRequest API (`kubectl create token`), as a pod would. With
   * `node`, the token is bound to a Pod object scheduled on that node (no kubelet runs it:
   * the API server stores it, and the token is valid while it exists), as the kubelet's
   * token for a DaemonSet pod is: it then carries the node's name, which the chart's
   * admission policy requires of a sidecar writing its registration Lease.
   */
  async serviceAccountKubeconfig(serviceAccount: string, opts: { node?: string } = {}): Promise<string> {
    const bound = opts.node === undefined ? [] : await this.#boundTo(serviceAccount, opts.node);
    const token = (await this.kubectlOk(['create', 'token', serviceAccount, '-n', OPERATOR_NAMESPACE, '--duration=2h', ...bound])).trim();
    const admin = await readFile(this.kubeconfig, 'utf8');
    const path = join(this.dir, `${serviceAccount}${opts.node === undefined ? '' : `-${opts.node}`}.kubeconfig`);
    // Same cluster and CA as the admin's; only the user differs.
    await writeFile(path, admin.replace(/token: .*/, `token: ${token}`).replace('name: admin', `name: ${serviceAccount}`).replace('user: admin', `user: ${serviceAccount}`));
    return path;
  }

  /** The `kubectl create token` flags binding a token to a pod of `serviceAccount` on `node` (made once). */
  async #boundTo(serviceAccount: string, node: string): Promise<string[]> {
    const pod = `${serviceAccount}-${node}`;
    const manifest = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod, namespace: OPERATOR_NAMESPACE, labels: { 'app.kubernetes.io/component': 'token-holder' } },
      spec: { nodeName: node, serviceAccountName: serviceAccount, automountServiceAccountToken: false, containers: [{ name: 'token', image: 'localhost/blockmirror/none:never-run' }] },
    };
    if ((await this.kubectl(['get', 'pod', pod, '-n', OPERATOR_NAMESPACE, '-o', 'name'])).code !== 0) {
      await this.kubectlOk(['create', '-f', '-'], { input: JSON.stringify(manifest) });
    }
    const uid = (await this.kubectlOk(['get', 'pod', pod, '-n', OPERATOR_NAMESPACE, '-o', 'jsonpath={.metadata.uid}'])).trim();
    return ['--bound-object-kind=Pod', `--bound-object-name=${pod}`, `--bound-object-uid=${uid}`];
  }

  kubectl(args: string[], opts: { input?: string } = {}): Promise<RunResult> {
    return run(this.kubectlPath, ['--kubeconfig', this.kubeconfig, ...args], { timeoutMs: 60_000, ...opts });
  }

  async kubectlOk(args: string[], opts: { input?: string } = {}): Promise<string> {
    const r = await this.kubectl(args, opts);
    if (r.code !== 0) throw new Error(`[site ${this.name}] kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  /** `kubectl get rp NAME -o json`, parsed; undefined when it does not exist. */
  async getPair(name: string, namespace = 'default'): Promise<PairObject | undefined> {
    const r = await this.kubectl(['get', 'rp', name, '-n', namespace, '-o', 'json']);
    if (r.code !== 0) {
      if (/NotFound/.test(r.stderr)) return undefined;
      throw new Error(`kubectl get rp ${name}: ${r.stderr}`);
    }
    return JSON.parse(r.stdout) as PairObject;
  }

  async stop(): Promise<void> {
    await runOk('bash', [CONTROL_PLANE, 'down', this.dir], { timeoutMs: 60_000 });
  }
}

export interface PairObject {
  metadata: { name: string; finalizers?: string[]; generation?: number };
  spec: Record<string, unknown>;
  status?: {
    state?: string;
    outOfSyncBytes?: number;
    exportAddress?: string;
    rpoSeconds?: number;
    observedGeneration?: number;
    sidecar?: { node: string; endpoint: string };
    conditions?: { type: string; status: string; reason: string; message: string; observedGeneration?: number }[];
  };
}

/** Fills ${NAME} placeholders of an example manifest; every one must be given. */
export async function renderExample(relPath: string, vars: Record<string, string>): Promise<string> {
  const text = await readFile(join(REPO_ROOT, relPath), 'utf8');
  // Comment lines may mention the ${...} syntax itself; only the manifest is filled.
  return text
    .split('\n')
    .map((line) =>
      line.trimStart().startsWith('#')
        ? line
        : line.replace(/\$\{([A-Z_]+)\}/g, (_m, k: string) => {
            const v = vars[k];
            if (v === undefined) throw new Error(`${relPath}: no value for \${${k}}`);
            return v;
          }),
    )
    .join('\n');
}

/** A real `blockmirror operator` process against one site. */
export class OperatorProcess {
  readonly child: ChildProcess;
  readonly log: string[];
  readonly exited: Promise<void>;

  private constructor(child: ChildProcess, log: string[], exited: Promise<void>) {
    this.child = child;
    this.log = log;
    this.exited = exited;
  }

  /** `kubeconfig`: whose credentials it runs with (default: the site's admin). */
  static async start(site: KubeSite, extraArgs: string[] = [], kubeconfig = site.kubeconfig): Promise<OperatorProcess> {
    const args = [CLI, 'operator', '--kubeconfig', kubeconfig, '--namespace', OPERATOR_NAMESPACE, '--health-listen', '127.0.0.1:0', '--poll-ms', '500', ...extraArgs];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const log: string[] = [];
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdout!.on('data', (c: Buffer) => log.push(...c.toString('utf8').split('\n').filter((l) => l !== '')));
    child.stderr!.on('data', (c: Buffer) => log.push(c.toString('utf8')));
    const deadline = Date.now() + 20_000;
    while (!log.some((l) => l.includes('"operator ready"'))) {
      if (child.exitCode !== null) throw new Error(`operator exited early:\n${log.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`operator not ready:\n${log.join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return new OperatorProcess(child, log, exited);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.exited;
  }

  async kill9(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}
