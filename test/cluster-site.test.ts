import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { ClusterSite, testImages, type LocalImage } from './helpers/cluster-site.js';
import { run } from './helpers/run-cli.js';
import { waitFor } from './helpers/wait-for.js';

// Real Kubernetes sites (hack/site.sh): etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, and a node whose kubelet runs pods with a private containerd, runc and
// the CNI bridge, each site in its own network namespace. Images are imported, never
// pulled: the sandbox and the test pods' image are assembled locally.

interface PodStatus {
  phase?: string;
  podIP?: string;
  conditions?: { type: string; status: string }[];
  containerStatuses?: { containerID?: string; restartCount: number; ready: boolean }[];
}

/** A pod of the busybox test image, never pulled, on the site's only node. */
function pod(name: string, image: LocalImage, script: string, extra: { ports?: object[]; readinessProbe?: object } = {}): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'main', image: image.image, imagePullPolicy: 'Never', command: ['sh', '-c', script], ...extra }],
    },
  });
}

async function podStatus(site: ClusterSite, name: string): Promise<PodStatus> {
  return (JSON.parse(await site.kubectlOk(['get', 'pod', name, '-o', 'json'])) as { status: PodStatus }).status;
}

async function waitReady(site: ClusterSite, name: string, timeoutMs = 60_000): Promise<PodStatus> {
  return waitFor(
    `pod ${name} Ready on ${site.name}`,
    async () => {
      const s = await podStatus(site, name);
      return s.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? s : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

/**
 * Every live process whose command line, working directory or mounts involve `dir`:
 * the site's components, and containers (their root filesystem is under it).
 */
async function processesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    try {
      if (!(await alive(Number(pid)))) continue;
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
      const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => '');
      const mounts = await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '');
      if (cmdline.includes(dir) || cwd.startsWith(dir) || mounts.includes(`${dir}/`)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

async function mountsUnder(dir: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** The error code of a TCP connection attempt from the host, or 'connected'. */
function connectError(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 5_000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve('ETIMEDOUT');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** Running, and not a zombie waiting for init to reap it. */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

describe('one site: a kubelet and containerd node', () => {
  const cleanup = new CleanupStack();
  let work: string;
  let busybox: LocalImage;
  let site: ClusterSite;
  let stopSite: () => Promise<void>;

  beforeAll(async () => {
    busybox = (await testImages()).busybox;
    work = await mkdtemp(join(tmpdir(), 'bm-site-'));
    cleanup.track('work dir', () => rm(work, { recursive: true, force: true }));
    const started = Date.now();
    stopSite = cleanup.track('site solo', () => ClusterSite.down(join(work, 'solo')));
    site = await ClusterSite.start('solo', join(work, 'solo'), { images: [busybox] });
    process.stdout.write(`one site up in ${((Date.now() - started) / 1000).toFixed(1)} s:\n${site.upLog}`);
  }, 300_000);

  afterAll(() => cleanup.releaseAll(), 180_000);

  it('registers its node at its namespace address, and the node goes Ready', async () => {
    const node = JSON.parse(await site.kubectlOk(['get', 'node', site.node.name, '-o', 'json'])) as {
      status: { conditions: { type: string; status: string }[]; addresses: { type: string; address: string }[]; nodeInfo: { containerRuntimeVersion: string; kubeletVersion: string } };
    };
    expect(node.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(node.status.addresses).toContainEqual({ type: 'InternalIP', address: site.node.address });
    expect(site.node.address).not.toMatch(/^127\./);
    expect(node.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/1\.6\./);
    expect(node.status.nodeInfo.kubeletVersion).toBe('v1.36.3');
    // The sandbox image is the local one, imported, never pulled.
    expect(await site.ctr(['images', 'ls', '-q'])).toContain(site.info.sandboxImage);
  });

  it('runs a pod from an imported image; kubectl logs and exec work; Services reach the API server', async () => {
    await site.kubectlOk(['apply', '-f', '-'], { input: pod('hello', busybox, 'echo "hello from $(hostname)"; exec sleep 3600') });
    const status = await waitReady(site, 'hello');
    expect(status.podIP?.startsWith(site.node.podCIDR.split('.').slice(0, 3).join('.'))).toBe(true);
    await waitFor('the pod log line', async () => (await site.kubectlOk(['logs', 'hello'])).includes('hello from hello'));
    expect((await site.kubectlOk(['exec', 'hello', '--', 'sh', '-c', 'echo $((6 * 7))'])).trim()).toBe('42');
    // The kubernetes Service's ClusterIP, through kube-proxy's rules, reaches the API server.
    const svc = (await site.kubectlOk(['get', 'service', 'kubernetes', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    expect((await site.kubectlOk(['exec', 'hello', '--', 'sh', '-c', `echo | nc -w 5 ${svc} 443 && echo connected`])).trim()).toBe('connected');
  });

  it("restarts the container when its process is killed (restartCount grows)", async () => {
    const before = await podStatus(site, 'hello');
    const id = before.containerStatuses![0]!.containerID!.replace('containerd://', '');
    const task = (await site.ctr(['tasks', 'ls'])).split('\n').find((l) => l.startsWith(id));
    const pid = Number(task?.split(/\s+/)[1]);
    expect(pid).toBeGreaterThan(1);
    process.kill(pid, 'SIGKILL');
    const after = await waitFor(
      'the kubelet to restart the container',
      async () => {
        const s = await podStatus(site, 'hello');
        const c = s.containerStatuses?.[0];
        return c && c.restartCount > before.containerStatuses![0]!.restartCount && c.ready ? c : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(after.containerID).not.toBe(before.containerStatuses![0]!.containerID);
    expect(await site.kubectlOk(['logs', 'hello', '--previous'])).toContain('hello from hello');
  });

  it('down leaves no namespace, veth, mount, container log link or process behind', async () => {
    const dir = site.info.dir;
    const pids: number[] = [];
    for (const f of (await readdir(dir)).filter((f) => f.endsWith('.pid'))) pids.push(Number(await readFile(join(dir, f), 'utf8')));
    const tasks = (await site.ctr(['tasks', 'ls'])).split('\n').slice(1).filter((l) => l.trim() !== '');
    for (const t of tasks) pids.push(Number(t.split(/\s+/)[1]));
    const ids = tasks.map((t) => t.split(/\s+/)[0]!);
    expect(pids.length).toBeGreaterThanOrEqual(9); // 7 components, the sandbox and the container
    expect((await mountsUnder(dir)).length).toBeGreaterThan(0);
    expect((await processesUnder(dir)).length).toBeGreaterThan(0);

    await stopSite();

    const left: number[] = [];
    for (const pid of pids) if (await alive(pid)) left.push(pid);
    expect(left).toEqual([]);
    expect(await processesUnder(dir)).toEqual([]);
    expect(await mountsUnder(dir)).toEqual([]);
    expect(existsSync(`/run/netns/${site.info.netns}`)).toBe(false);
    expect((await run('ip', ['link', 'show', `${site.info.netns}h`])).code).not.toBe(0);
    const links = existsSync('/var/log/containers') ? await readdir('/var/log/containers') : [];
    for (const l of links) expect(await readlink(join('/var/log/containers', l)).catch(() => '')).not.toContain(dir);
    // Outside DIR: no cgroup of its containers, no CNI result of its sandboxes.
    const cgroups = existsSync('/sys/fs/cgroup/memory/k8s.io') ? await readdir('/sys/fs/cgroup/memory/k8s.io') : [];
    const results = existsSync('/var/lib/cni/results') ? await readdir('/var/lib/cni/results') : [];
    for (const id of ids) {
      expect(cgroups).not.toContain(id);
      expect(results.filter((r) => r.includes(id))).toEqual([]);
    }
    // Down twice is fine.
    await site.stop();
  }, 120_000);
});

describe('two sites at once: separate, reaching each other only at node addresses', () => {
  const cleanup = new CleanupStack();
  let work: string;
  let busybox: LocalImage;
  let a: ClusterSite;
  let b: ClusterSite;

  beforeAll(async () => {
    busybox = (await testImages()).busybox;
    work = await mkdtemp(join(tmpdir(), 'bm-sites-'));
    cleanup.track('work dir', () => rm(work, { recursive: true, force: true }));
    const started = Date.now();
    const start = (name: string): Promise<ClusterSite> => {
      cleanup.track(`site ${name}`, () => ClusterSite.down(join(work, name)));
      return ClusterSite.start(name, join(work, name), { images: [busybox] });
    };
    [a, b] = await Promise.all([start('site-a'), start('site-b')]);
    const seconds = (Date.now() - started) / 1000;
    process.stdout.write(`two sites up in ${seconds.toFixed(1)} s:\n${a.upLog}${b.upLog}`);
    // The target for a warm start of both sites.
    expect(seconds).toBeLessThan(120);
  }, 300_000);

  afterAll(() => cleanup.releaseAll(), 180_000);

  it('gives each site its own namespace, node address and pod CIDR', () => {
    expect(a.info.netns).not.toBe(b.info.netns);
    expect(a.node.address).not.toBe(b.node.address);
    expect(a.info.podCIDR).not.toBe(b.info.podCIDR);
  });

  it("a pod on site A reaches a hostPort on site B's node address, and neither loopback nor B's pods", async () => {
    const server = pod('server', busybox, `mkdir -p /www && echo "served by ${b.name}" >/www/index.html && exec httpd -f -vv -p 8080 -h /www`, {
      ports: [{ containerPort: 8080, hostPort: 18080 }],
      readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
    });
    await Promise.all([b.kubectlOk(['apply', '-f', '-'], { input: server }), a.kubectlOk(['apply', '-f', '-'], { input: pod('client', busybox, 'exec sleep 3600') })]);
    const [serverStatus] = await Promise.all([waitReady(b, 'server'), waitReady(a, 'client')]);
    // An HTTP GET with busybox nc (its static wget crashes resolving even a numeric host).
    const get = (host: string, port: number): Promise<string> =>
      a.kubectlOk(['exec', 'client', '--', 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${host} ${port} 2>&1; echo "exit=$?"`]);

    const reply = await get(b.node.address, 18080);
    expect(reply).toMatch(/^HTTP\/1\.[01] 200 OK/);
    expect(reply).toContain(`served by ${b.name}`);
    // The request left site A from its node address (masqueraded), over the sites' link.
    await waitFor('the server to log the client address', async () => (await b.kubectlOk(['logs', 'server'])).includes(a.node.address));

    // Not through loopback: neither A's pod, nor A's node, nor the host has B's port there.
    expect(await get('127.0.0.1', 18080)).toMatch(/can't connect[^]*exit=1/);
    const fromNodeA = await a.inNetns('busybox', ['nc', '-w', '3', '127.0.0.1', '18080'], { timeoutMs: 20_000 });
    expect(fromNodeA.stderr).toMatch(/can't connect/);
    expect(await connectError('127.0.0.1', 18080)).toBe('ECONNREFUSED');
    // Only what B exposes: B's pod address itself is not reachable from A.
    expect(serverStatus.podIP).toBeDefined();
    expect(await get(serverStatus.podIP!, 8080)).toMatch(/can't connect[^]*exit=1/);
  });
});
