import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { ClusterSite, testImages, type LocalImage } from './helpers/cluster-site.js';
import { run } from './helpers/run-cli.js';
import { VmNode } from './helpers/vm-node.js';
import { waitFor } from './helpers/wait-for.js';

// A site with a host node and a node in the VM test bed (hack/site-vm-node.sh): the guest's
// kubelet and containerd run on Debian's kernel under qemu (TCG), which has the
// device-mapper the host's kernel lacks. One VM boot for the whole file: it is slow.

interface NodeJson {
  metadata: { labels: Record<string, string> };
  status: {
    conditions: { type: string; status: string }[];
    addresses: { type: string; address: string }[];
    nodeInfo: { kernelVersion: string; containerRuntimeVersion: string; kubeletVersion: string };
  };
}

/** A pod of the busybox test image pinned to `node`, never pulled. */
function pod(name: string, node: string, image: LocalImage, script: string, privileged = false): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'main', image: image.image, imagePullPolicy: 'Never', command: ['sh', '-c', script], securityContext: { privileged } }],
    },
  });
}

/** Running, and not a zombie waiting for init to reap it (qemu daemonizes: init is its parent). */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

describe('a site with a node in the VM test bed', () => {
  const cleanup = new CleanupStack();
  let work: string;
  let busybox: LocalImage;
  let site: ClusterSite;
  let vm: VmNode;
  let stopVm: () => Promise<void>;

  beforeAll(async () => {
    busybox = (await testImages()).busybox;
    work = await mkdtemp(join(tmpdir(), 'bm-vmnode-'));
    cleanup.track('work dir', () => rm(work, { recursive: true, force: true }));
    cleanup.track('site', () => ClusterSite.down(join(work, 'site')));
    site = await ClusterSite.start('mixed', join(work, 'site'), { images: [busybox] });
    stopVm = cleanup.track('VM node', () => VmNode.down(site.info.dir));
    const started = Date.now();
    vm = await VmNode.join(site, { images: [busybox], timeoutMs: 900_000 });
    process.stdout.write(`VM node Ready in ${((Date.now() - started) / 1000).toFixed(1)} s:\n${vm.upLog}`);
  }, 1_000_000);

  afterAll(() => cleanup.releaseAll(), 240_000);

  it('registers beside the host node and goes Ready, on the guest kernel, at its own site address', async () => {
    const nodes = new Map<string, NodeJson>();
    for (const name of [site.node.name, vm.node.name]) nodes.set(name, JSON.parse(await site.kubectlOk(['get', 'node', name, '-o', 'json'])) as NodeJson);
    const [host, guest] = [nodes.get(site.node.name)!, nodes.get(vm.node.name)!];
    for (const n of [host, guest]) expect(n.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(guest.status.addresses).toContainEqual({ type: 'InternalIP', address: vm.node.address });
    expect(vm.node.address).toBe(site.node.address.replace(/\.1$/, '.2'));
    expect(guest.metadata.labels['blockmirror.io/node-kernel']).toBe('vm');
    expect(guest.status.nodeInfo.kubeletVersion).toBe('v1.36.3');
    expect(guest.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/1\.6\./);
    // Debian's kernel in the guest; the host node runs on the machine's own.
    expect(guest.status.nodeInfo.kernelVersion).toMatch(/-amd64$/);
    expect(guest.status.nodeInfo.kernelVersion).not.toBe(host.status.nodeInfo.kernelVersion);
  });

  it('runs a pod from an imported image; kubectl logs and exec reach the guest; Services reach the API server', async () => {
    await site.kubectlOk(['apply', '-f', '-'], { input: pod('in-vm', vm.node.name, busybox, 'echo "hello from $(uname -r)"; exec sleep 3600') });
    const status = await waitFor(
      'pod in-vm Ready',
      async () => {
        const s = (JSON.parse(await site.kubectlOk(['get', 'pod', 'in-vm', '-o', 'json'])) as { status: { podIP?: string; conditions?: { type: string; status: string }[] } }).status;
        return s.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? s : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 1_000 },
    );
    expect(status.podIP?.startsWith(vm.node.podCIDR.split('.').slice(0, 3).join('.'))).toBe(true);
    // Through the API server to the guest's kubelet: the redirect to qemu's forwarded port.
    await waitFor('the pod log line', async () => /hello from \S+-amd64/.test(await site.kubectlOk(['logs', 'in-vm'])), { timeoutMs: 60_000, intervalMs: 1_000 });
    expect((await site.kubectlOk(['exec', 'in-vm', '--', 'sh', '-c', 'echo $((6 * 7))'], { timeoutMs: 120_000 })).trim()).toBe('42');
    // The kubernetes Service, through the guest's kube-proxy and the forward to the API server.
    const svc = (await site.kubectlOk(['get', 'service', 'kubernetes', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    expect((await site.kubectlOk(['exec', 'in-vm', '--', 'sh', '-c', `nc -w 10 ${svc} 443 </dev/null && echo connected`], { timeoutMs: 120_000 })).trim()).toBe('connected');
  }, 600_000);

  it('has device-mapper in the guest, where the host node has none', async () => {
    const probe = 'uname -r; if test -c /dev/mapper/control && grep -q device-mapper /proc/misc; then echo dm: present; else echo dm: absent; fi; exec sleep 3600';
    await site.kubectlOk(['apply', '-f', '-'], { input: pod('dm-vm', vm.node.name, busybox, probe, true) });
    await site.kubectlOk(['apply', '-f', '-'], { input: pod('dm-host', site.node.name, busybox, probe, true) });
    const logs = async (name: string): Promise<string> =>
      waitFor(`pod ${name}'s probe`, async () => {
        const r = await site.kubectl(['logs', name]);
        return r.code === 0 && r.stdout.includes('dm: ') ? r.stdout : undefined;
      }, { timeoutMs: 300_000, intervalMs: 1_000 });
    expect(await logs('dm-vm')).toContain('dm: present');
    expect(await logs('dm-host')).toContain('dm: absent');
    // The node's own check at boot: dmsetup talks to the guest kernel's driver.
    const features = await vm.kernelFeatures();
    expect(features).toMatch(/Driver version: +4\.\d+\.\d+/);
    expect(features).toContain('/dev/mapper/control present');
  }, 600_000);

  it('talks to the host only through 127.0.0.1 forwards: the API server answers, nothing else of the site does', async () => {
    // qemu listens on the site namespace's loopback only (the kubelet's forwarded port).
    const qemu = (await readFile(join(vm.dir, 'qemu.pid'), 'utf8')).trim();
    const ss = await site.inNetns('ss', ['-Hltnp']);
    const listening = ss.stdout.split('\n').filter((l) => l.includes(`pid=${qemu},`));
    expect(listening.length).toBeGreaterThan(0);
    for (const l of listening) expect(l.split(/\s+/)[3]).toMatch(/^127\.0\.0\.1:\d+$/);
    // From the guest: the API server (forwarded) connects; the host node's kubelet, listening
    // on the same address, does not (restrict=on drops what no guestfwd names).
    const dial = (host: string, port: number): Promise<string> =>
      site.kubectlOk(['exec', 'in-vm', '--', 'sh', '-c', `nc -w 5 ${host} ${port} </dev/null && echo connected || echo refused`], { timeoutMs: 120_000 }).then((s) => s.trim());
    expect(await dial(site.node.address, 6443)).toBe('connected');
    expect(await dial(site.node.address, 10250)).toBe('refused');
  }, 600_000);

  it('down stops the VM and removes its forwards, files and Node', async () => {
    const qemu = Number((await readFile(join(vm.dir, 'qemu.pid'), 'utf8')).trim());
    expect(await alive(qemu)).toBe(true);
    await stopVm();
    expect(await alive(qemu)).toBe(false);
    expect((await run('pgrep', ['-f', `${vm.dir}/`])).stdout).toBe('');
    expect(existsSync(vm.dir)).toBe(false);
    const nat = await site.inNetns('iptables', ['-t', 'nat', '-S']);
    expect(nat.stdout).not.toContain('BM-VMNODE');
    await waitFor('the VM Node object deleted', async () => (await site.kubectl(['get', 'node', vm.node.name])).code !== 0, { timeoutMs: 30_000, intervalMs: 500 });
    const info = JSON.parse(await readFile(join(site.info.dir, 'site.json'), 'utf8')) as { nodes: { name: string }[] };
    expect(info.nodes.map((n) => n.name)).toEqual([site.node.name]);
    // The host node is untouched.
    expect(await site.kubectlOk(['get', 'node', site.node.name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])).toBe('True');
  }, 180_000);
});
