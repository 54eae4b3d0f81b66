import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, type RunResult } from './run-cli.js';
import { REPO_ROOT } from './sidecar-process.js';
import { waitFor } from './wait-for.js';

/** An image's configuration as containerd stores it (the OCI image config's `config`). */
export interface ImageConfig {
  User?: string;
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
}

export interface CtrRunOptions {
  /** `ctr run --privileged`: all devices and capabilities, as the sidecar's DaemonSet pod. */
  privileged?: boolean;
  timeoutMs?: number;
}

/**
 * A private containerd (Debian's, with runc): its own root, state, socket and cgroup
 * parent in `dir`, no CRI plugin and no registry configuration, so that it only ever runs
 * images imported into it. It runs in its own mount namespace: every snapshot and rootfs
 * mount it and its shims make is gone once they are.
 */
export class Containerd {
  readonly dir: string;
  readonly socket: string;
  readonly namespace: string;
  /** Every container's cgroup lives under this parent (removed by stop). */
  readonly cgroupParent: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  readonly #log: string[];

  private constructor(dir: string, namespace: string, child: ChildProcess, exited: Promise<void>, log: string[]) {
    this.dir = dir;
    this.socket = join(dir, 'containerd.sock');
    this.namespace = namespace;
    this.cgroupParent = `/blockmirror-test-${child.pid}`;
    this.#child = child;
    this.#exited = exited;
    this.#log = log;
  }

  /** Starts containerd in `dir` (an empty directory) and waits until it answers. */
  static async start(dir: string, opts: { namespace?: string } = {}): Promise<Containerd> {
    const config = [
      'version = 2',
      `root = "${join(dir, 'root')}"`,
      `state = "${join(dir, 'state')}"`,
      // The kubelet's plugin is for a later step; images and runc are all this needs.
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${join(dir, 'containerd.sock')}"`,
      '[ttrpc]',
      `  address = "${join(dir, 'containerd.sock.ttrpc')}"`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${join(dir, 'opt')}"`,
      '',
    ].join('\n');
    await writeFile(join(dir, 'config.toml'), config);
    // Without the copies of other test beds' mounts its namespace starts with (see
    // hack/lib/private-mounts.sh); exec keeps containerd's PID the child's.
    const script = `source ${join(REPO_ROOT, 'hack', 'lib', 'private-mounts.sh')} && drop_foreign_mounts && exec containerd --config ${join(dir, 'config.toml')}`;
    const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'bash', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    const log: string[] = [];
    const keep = (c: Buffer): void => {
      log.push(c.toString('utf8'));
      if (log.length > 200) log.shift();
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const c = new Containerd(dir, opts.namespace ?? 'k8s.io', child, exited, log);
    try {
      await waitFor('containerd to answer', async () => {
        if (child.exitCode !== null) throw new Error(`containerd exited ${child.exitCode}:\n${log.join('')}`);
        return (await c.ctr(['version'])).code === 0;
      }, { timeoutMs: 30_000, intervalMs: 100 });
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  /** `ctr` against this containerd, in its namespace. */
  ctr(args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    return run('ctr', ['--address', this.socket, '--namespace', this.namespace, ...args], { timeoutMs: opts.timeoutMs ?? 60_000 });
  }

  async ctrOk(args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    const r = await this.ctr(args, opts);
    if (r.code !== 0) throw new Error(`ctr ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout;
  }

  /** `ctr images import` of an OCI archive; the names come from the archive. */
  async importArchive(archive: string): Promise<void> {
    await this.ctrOk(['images', 'import', archive], { timeoutMs: 300_000 });
  }

  /** The names of the images it holds. */
  async imageNames(): Promise<string[]> {
    return (await this.ctrOk(['images', 'list', '--quiet'])).split('\n').filter((l) => l !== '');
  }

  /** The image's configuration, read back from containerd's content store. */
  async imageConfig(image: string): Promise<ImageConfig> {
    const line = (await this.ctrOk(['images', 'list', `name==${image}`])).split('\n').find((l) => l.startsWith(`${image} `));
    if (line === undefined) throw new Error(`image ${image} is not in containerd`);
    const manifestDigest = line.split(/\s+/)[2];
    const manifest = JSON.parse(await this.ctrOk(['content', 'get', manifestDigest])) as { config: { digest: string } };
    const config = JSON.parse(await this.ctrOk(['content', 'get', manifest.config.digest])) as { config?: ImageConfig };
    return config.config ?? {};
  }

  /**
   * `ctr run --rm IMAGE ID ARGS...`: a container of the image with the image's user,
   * environment and working directory, running ARGS (instead of its entrypoint and
   * command); resolves when it has exited and been removed.
   */
  runContainer(image: string, id: string, args: string[], opts: CtrRunOptions = {}): Promise<RunResult> {
    return this.ctr(['run', '--rm', ...this.#runFlags(id, opts), image, id, ...args], { timeoutMs: opts.timeoutMs ?? 120_000 });
  }

  /** Like runContainer, but returns the `ctr run` process at once (stop it with `ctr task kill`). */
  spawnContainer(image: string, id: string, args: string[], opts: CtrRunOptions = {}): ChildProcess {
    const ctrArgs = ['--address', this.socket, '--namespace', this.namespace, 'run', '--rm', ...this.#runFlags(id, opts), image, id, ...args];
    return spawn('ctr', ctrArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** The host PID of a running container's process, once its task is RUNNING. */
  async taskPid(id: string): Promise<number> {
    return waitFor(`task ${id} running`, async () => {
      const line = (await this.ctrOk(['tasks', 'list'])).split('\n').find((l) => l.split(/\s+/)[0] === id);
      const [, pid, status] = line?.split(/\s+/) ?? [];
      return status === 'RUNNING' ? Number(pid) : undefined;
    }, { timeoutMs: 60_000, intervalMs: 100 });
  }

  #runFlags(id: string, opts: CtrRunOptions): string[] {
    return ['--cgroup', `${this.cgroupParent}/${id}`, ...(opts.privileged === true ? ['--privileged'] : [])];
  }

  /**
   * Kills and removes every container left, stops containerd, then removes its shims'
   * leftovers, the cgroup parent and `dir`.
   */
  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      const tasks = await this.ctr(['tasks', 'list', '--quiet']);
      for (const id of tasks.code === 0 ? tasks.stdout.split('\n').filter((l) => l !== '') : []) {
        await this.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
        await waitFor(`task ${id} to stop`, async () => (await this.ctr(['tasks', 'delete', id])).code === 0 || !(await this.ctrOk(['tasks', 'list', '--quiet'])).includes(id), { timeoutMs: 30_000, intervalMs: 100 });
      }
      const containers = await this.ctr(['containers', 'list', '--quiet']);
      for (const id of containers.code === 0 ? containers.stdout.split('\n').filter((l) => l !== '') : []) await this.ctr(['containers', 'delete', id]);
      this.#child.kill('SIGTERM');
      const killed = await Promise.race([this.#exited.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 15_000))]);
      if (killed) {
        this.#child.kill('SIGKILL');
        await this.#exited;
      }
    }
    // A shim outlives containerd by design; with no task left each one exits, but one
    // that did not is ended here, by its PID.
    await waitFor('the shims of this containerd to exit', async () => {
      const shims = await this.#shimPids();
      for (const pid of shims) process.kill(pid, 'SIGKILL');
      return shims.length === 0;
    }, { timeoutMs: 15_000, intervalMs: 100 });
    await this.#removeCgroupParent();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Log lines containerd wrote, for failure messages. */
  log(): string {
    return this.#log.join('');
  }

  async #shimPids(): Promise<number[]> {
    const pids: number[] = [];
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const cmdline = await readFile(join('/proc', entry, 'cmdline'), 'utf8').catch(() => '');
      if (cmdline.startsWith('containerd-shim') || cmdline.includes('/containerd-shim')) {
        if (cmdline.split('\0').includes(this.socket)) pids.push(Number(entry));
      }
    }
    return pids;
  }

  /** rmdir of the parent in every cgroup hierarchy (v1 controllers, or the v2 root). */
  async #removeCgroupParent(): Promise<void> {
    const roots = ['/sys/fs/cgroup', ...(await readdir('/sys/fs/cgroup', { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => join('/sys/fs/cgroup', e.name))];
    for (const root of roots) {
      await rmdir(join(root, this.cgroupParent)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT' && err.code !== 'ENOTDIR') throw err;
      });
    }
  }
}
