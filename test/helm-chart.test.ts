import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { CHART, KubeSite, OPERATOR_NAMESPACE, RELEASE } from './helpers/kube-site.js';
import { REPO_ROOT } from './helpers/sidecar-process.js';

// The Helm chart against a real kube-apiserver: lint, render with default and with every
// optional feature and have the API server accept it (server-side dry run), refuse a
// misspelled value, install, upgrade and uninstall, and check that the ServiceAccounts'
// tokens are refused what the chart does not grant. (That the grants are enough is shown
// by test/operator-two-site, whose operators and sidecars run with these tokens; least
// privilege in detail, the sidecars' Lease policy and the grants' uses: test/chart-rbac.)

interface ContainerJson {
  name: string;
  args: string[];
  securityContext?: object;
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  ports?: { name: string; containerPort: number }[];
  volumeMounts: { name: string; mountPath: string; mountPropagation?: string }[];
}
interface DaemonSetJson {
  spec: { template: { spec: { containers: ContainerJson[]; volumes: { name: string; hostPath?: { path: string } }[] } } };
}

const ALL_FEATURES = join(REPO_ROOT, 'test', 'fixtures', 'chart-all-features.yaml');
const cleanup = new CleanupStack();
let site: KubeSite;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bm-chart-'));
  cleanup.track(`work dir ${dir}`, () => rm(dir, { recursive: true, force: true }));
  site = await KubeSite.start('chart', join(dir, 'control-plane'), { install: 'none' });
  cleanup.track('control plane', () => site.stop());
  // The CRDs of cert-manager and the Prometheus operator, which the optional features use.
  await site.kubectlOk(['apply', '-f', join(REPO_ROOT, 'test', 'fixtures', 'third-party-crds.yaml')]);
}, 180_000);

afterAll(() => cleanup.releaseAll(), 60_000);

describe('the Helm chart', () => {
  it('lints clean with default values and with every optional feature', async () => {
    for (const extra of [[], ['-f', ALL_FEATURES]]) {
      const out = await site.helmOk(['lint', '--strict', CHART, ...extra]);
      expect(out).toContain('1 chart(s) linted, 0 chart(s) failed');
      expect(out).not.toMatch(/\[(WARNING|ERROR)\]/);
    }
  });

  it('renders manifests the API server accepts (server-side dry run), default and all features', async () => {
    for (const extra of [[], ['-f', ALL_FEATURES]]) {
      const manifests = await site.helmOk(['template', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE, ...extra]);
      const kinds = [...manifests.matchAll(/^kind: (\w+)/gm)].map((m) => m[1]);
      expect(kinds).toEqual(expect.arrayContaining(['CustomResourceDefinition', 'Deployment', 'DaemonSet', 'ServiceAccount', 'ClusterRole', 'Role', 'Service']));
      if (extra.length > 0) expect(kinds).toEqual(expect.arrayContaining(['Certificate', 'ServiceMonitor', 'PrometheusRule', 'NetworkPolicy']));
      const r = await site.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: manifests });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/deployment\.apps\/blockmirror-operator created \(server dry run\)/);
      expect(r.stdout).toMatch(/daemonset\.apps\/blockmirror-sidecar created \(server dry run\)/);
    }
  });

  it('the sidecar runs under supervise with its control socket; each csiProxy driver gets a csi-proxy container registered in its place; the operator verifies sidecars by one DNS name', async () => {
    const render = async (extra: string[]): Promise<{ ds: DaemonSetJson; operatorArgs: string[]; certNames: string[] }> => {
      const out = await site.helmOk(['template', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE, ...extra]);
      const json = parseAllDocuments(out)
        .map((d) => d.toJSON() as { kind?: string } | null)
        .filter((d): d is { kind: string } => d !== null && d.kind !== undefined);
      const ds = json.find((d) => d.kind === 'DaemonSet') as unknown as DaemonSetJson;
      const op = json.find((d) => d.kind === 'Deployment') as unknown as DaemonSetJson;
      const cert = json.find((d) => d.kind === 'Certificate') as unknown as { spec: { dnsNames: string[] } } | undefined;
      return { ds, operatorArgs: op.spec.template.spec.containers[0]!.args, certNames: cert?.spec.dnsNames ?? [] };
    };
    const plain = await render([]);
    const [sidecar, ...others] = plain.ds.spec.template.spec.containers;
    expect(others).toEqual([]);
    // supervise runs the sidecar as its child, with the fallback's helper.
    expect(sidecar!.args.slice(0, sidecar!.args.indexOf('--') + 4)).toEqual([
      'supervise',
      '--state-dir=/var/lib/blockmirror',
      '--nbd-helper=/usr/local/bin/blockmirror-nbd',
      '--fallback-after=20',
      // The kubelet's liveness asks the supervisor; the supervisor watches the sidecar.
      '--health-listen=0.0.0.0:9402',
      '--child-health=http://127.0.0.1:9400/healthz',
      '--hung-after=60',
      '--log-level=info',
      '--',
      'node',
      '/app/dist/sidecar/cli/main.js',
      'sidecar',
    ]);
    expect(sidecar!.args).toContain('--control-socket=/var/lib/blockmirror/control/control.sock');
    // Volumes only in the kubelet's volume directories (and the state dir, always): never /dev.
    const allowed = (args: string[]): string[] => args.filter((a) => a.startsWith('--allow-volume-prefix=')).map((a) => a.slice('--allow-volume-prefix='.length));
    expect(allowed(sidecar!.args)).toEqual(['/var/lib/kubelet/plugins', '/var/lib/kubelet/pods']);
    expect(sidecar!.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'supervisor' } });
    expect(sidecar!.ports).toEqual(expect.arrayContaining([{ name: 'supervisor', containerPort: 9402 }]));
    // Without TLS the operator dials loopback only: no name to verify.
    expect(plain.operatorArgs.filter((a) => a.startsWith('--control-server-name'))).toEqual([]);
    // Secondaries on CSI volumes are staged by pods of the sidecar's image (on every node already).
    expect(plain.operatorArgs).toEqual(expect.arrayContaining([`--holder-image=blockmirror/sidecar:0.1.0`, '--holder-pull-policy=IfNotPresent']));

    const all = await render(['-f', ALL_FEATURES]);
    const byName = new Map(all.ds.spec.template.spec.containers.map((c) => [c.name, c]));
    expect(allowed(byName.get('sidecar')!.args)).toEqual(['/var/lib/kubelet/plugins', '/var/lib/kubelet/pods', '/dev/disk/by-id/nvme-data-1', '/mnt/volumes']);
    expect(allowed((await render(['--set', 'sidecar.kubeletDir=/data/kubelet'])).ds.spec.template.spec.containers[0]!.args)).toEqual(['/data/kubelet/plugins', '/data/kubelet/pods']);
    expect([...byName.keys()]).toEqual(['sidecar', 'csi-proxy-ebs-csi-aws-com', 'csi-proxy-lvm-csi-example-io']);
    const ebs = byName.get('csi-proxy-ebs-csi-aws-com')!;
    expect(ebs.args).toEqual([
      'csi-proxy',
      '--driver-name=ebs.csi.aws.com',
      '--endpoint=unix:///var/lib/kubelet/plugins/blockmirror.io/ebs.csi.aws.com/csi.sock',
      '--driver=unix:///var/lib/kubelet/plugins/ebs.csi.aws.com/csi.sock',
      '--state-dir=/var/lib/kubelet/plugins/blockmirror.io/ebs.csi.aws.com/state',
      '--splice-control=unix:///var/lib/blockmirror/control/control.sock',
      '--registration-dir=/var/lib/kubelet/plugins_registry',
      '--log-level=info',
    ]);
    expect(ebs.securityContext).toEqual({ privileged: true });
    const mounts = (c: ContainerJson): string[] => c.volumeMounts.map((m) => `${m.name}:${m.mountPath}${m.mountPropagation !== undefined ? `:${m.mountPropagation}` : ''}`);
    expect(mounts(ebs)).toEqual([
      'dev:/dev',
      'kubelet-plugins:/var/lib/kubelet/plugins:Bidirectional',
      'kubelet-pods:/var/lib/kubelet/pods:Bidirectional',
      'plugins-registry:/var/lib/kubelet/plugins_registry',
      'control:/var/lib/blockmirror/control',
    ]);
    // A driver socket outside the kubelet's plugins dir gets its directory mounted.
    expect(mounts(byName.get('csi-proxy-lvm-csi-example-io')!)).toContain('driver-lvm-csi-example-io:/run/lvm-csi');
    const volumes = new Map(all.ds.spec.template.spec.volumes.map((v) => [v.name, v.hostPath?.path]));
    expect(Object.fromEntries(['kubelet-pods', 'plugins-registry', 'control', 'driver-lvm-csi-example-io'].map((n) => [n, volumes.get(n)]))).toEqual({
      'kubelet-pods': '/var/lib/kubelet/pods',
      'plugins-registry': '/var/lib/kubelet/plugins_registry',
      control: '/var/lib/blockmirror/control',
      'driver-lvm-csi-example-io': '/run/lvm-csi',
    });
    // TLS on: the operator verifies every sidecar as the name the Certificate carries.
    expect(all.operatorArgs).toContain('--control-server-name=sidecars.site-a.example.com');
    expect(all.certNames).toEqual(expect.arrayContaining(['blockmirror-sidecar-peer.blockmirror-system.svc', 'sidecars.site-a.example.com']));
    const byDefault = await render(['--set', 'tls.existingSecret=peer-tls']);
    expect(byDefault.operatorArgs).toContain('--control-server-name=blockmirror-sidecar-peer.blockmirror-system.svc');
  });

  it('issues one identity per role, mounts each only where it is used, and never lets the control port off the node without mutual TLS', async () => {
    type Doc = { kind: string; metadata: { name: string }; spec: Record<string, unknown> };
    const docs = async (extra: string[]): Promise<Doc[]> =>
      parseAllDocuments(await site.helmOk(['template', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE, ...extra]))
        .map((d) => d.toJSON() as Doc | null)
        .filter((d): d is Doc => d !== null && d.kind !== undefined);
    const all = await docs(['-f', ALL_FEATURES]);
    const certs = all.filter((d) => d.kind === 'Certificate').map((c) => ({ name: c.metadata.name, secret: c.spec.secretName, usages: c.spec.usages, uris: c.spec.uris }));
    expect(certs).toEqual([
      { name: 'blockmirror-control', secret: 'blockmirror-control-tls', usages: ['server auth'], uris: ['spiffe://blockmirror/site-a/sidecar-control'] },
      { name: 'blockmirror-peer', secret: 'blockmirror-peer-tls', usages: ['server auth', 'client auth'], uris: ['spiffe://blockmirror/site-a/peer'] },
      { name: 'blockmirror-operator', secret: 'blockmirror-operator-tls', usages: ['client auth'], uris: ['spiffe://blockmirror/site-a/operator'] },
    ]);
    type Pod = { containers: ContainerJson[]; volumes: { name: string; secret?: { secretName: string } }[] };
    const pod = (kind: string): Pod => (all.find((d) => d.kind === kind)!.spec as { template: { spec: Pod } }).template.spec;
    const secretsOf = (p: Pod): string[] => p.volumes.flatMap((v) => (v.secret ? [v.secret.secretName] : [])).sort();
    // The operator's key is in the operator's pod only: a node's kubelet fetches only the Secrets its pods mount.
    expect(secretsOf(pod('Deployment'))).toEqual(['blockmirror-operator-tls']);
    expect(secretsOf(pod('DaemonSet'))).toEqual(['blockmirror-control-tls', 'blockmirror-peer-tls']);
    const sidecarArgs = pod('DaemonSet').containers.find((c) => c.name === 'sidecar')!.args;
    expect(sidecarArgs).toEqual(expect.arrayContaining(['--operator-identity=spiffe://blockmirror/site-a/operator', '--remote-peer-identity=spiffe://blockmirror/site-b/peer', '--peer-cert=/etc/blockmirror/peer-tls/tls.crt']));
    // The NetworkPolicy: the control port from the operator's pods only, the peer port from the remote CIDRs only.
    const np = all.find((d) => d.kind === 'NetworkPolicy')!.spec as { ingress: { ports: { port: number }[]; from?: unknown[] }[] };
    const byPort = new Map(np.ingress.map((r) => [r.ports[0]!.port, r.from]));
    expect(byPort.get(7400)).toEqual([{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'blockmirror', 'app.kubernetes.io/instance': RELEASE, 'app.kubernetes.io/component': 'operator' } } }]);
    expect(byPort.get(7401)).toEqual([{ ipBlock: { cidr: '192.0.2.0/24' } }]);
    const closed = (await docs(['-f', ALL_FEATURES, '--set-json', 'networkPolicy.peerCIDRs=[]'])).find((d) => d.kind === 'NetworkPolicy')!.spec as typeof np;
    expect(closed.ingress.map((r) => r.ports[0]!.port)).not.toContain(7401);
    // Without TLS the control port binds loopback (the sidecar refuses anything else), and
    // hostNetwork, whose loopback every host-network process shares, is refused.
    const plainArgs = (await docs([])).find((d) => d.kind === 'DaemonSet')!.spec as { template: { spec: Pod } };
    expect(plainArgs.template.spec.containers[0]!.args).toContain('--control-listen=127.0.0.1:7400');
    const hostNet = await site.helm(['template', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE, '--set', 'sidecar.hostNetwork=true']);
    expect(hostNet.code).not.toBe(0);
    expect(hostNet.stderr).toMatch(/sidecar.hostNetwork needs TLS/);
    const noSite = await site.helm(['template', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE, '--set', 'tls.certManager.enabled=true', '--set', 'tls.certManager.issuerRef.name=ca']);
    expect(noSite.stderr).toMatch(/tls.certManager.enabled needs tls.site/);
    // Existing Secrets: the peer link's, and the control server's and the operator's beside it.
    const existing = await docs(['--set', 'tls.existingSecret=peer-tls', '--set', 'tls.existingOperatorSecret=op-tls']);
    expect(secretsOf((existing.find((d) => d.kind === 'DaemonSet')!.spec as { template: { spec: Pod } }).template.spec)).toEqual(['peer-tls', 'peer-tls-control']);
    expect(secretsOf((existing.find((d) => d.kind === 'Deployment')!.spec as { template: { spec: Pod } }).template.spec)).toEqual(['op-tls']);
  });

  it('refuses a CSI proxy driver without its socket, naming what is missing', async () => {
    const r = await site.helm(['template', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE, '--set', 'csiProxy.drivers[0].name=ebs.csi.aws.com']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/csiProxy\/drivers\/0.*missing propert.*'endpoint'/);
  });

  it('refuses a misspelled value, naming it', async () => {
    const r = await site.helm(['install', 'typo', CHART, '--namespace', OPERATOR_NAMESPACE, '--set', 'operator.replicsa=2']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/at '\/operator': additional properties 'replicsa' not allowed/);
    expect((await site.helm(['list', '-n', OPERATOR_NAMESPACE, '-q'])).stdout).not.toContain('typo');
  });

  it('installs; its ServiceAccounts are refused verbs the chart does not grant', async () => {
    const out = await site.helmOk(['install', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE]);
    expect(out).toContain('STATUS: deployed');
    expect(out).toContain('kubectl get rp -w');
    const operator = await site.serviceAccountKubeconfig(`${RELEASE}-operator`);
    const sidecar = await site.serviceAccountKubeconfig(`${RELEASE}-sidecar`);
    const as = (kubeconfig: string, args: string[]): ReturnType<KubeSite['kubectl']> => site.kubectl(['--kubeconfig', kubeconfig, ...args]);

    // Granted: the operator reads pairs and claims, the sidecar its Lease.
    expect((await as(operator, ['get', 'rp', '-A'])).code).toBe(0);
    expect((await as(operator, ['get', 'pvc', 'any', '-n', 'default'])).stderr).toMatch(/NotFound/);
    // A volume opts in to the splice by its StorageClass's parameter.
    expect((await as(operator, ['get', 'storageclass', 'any'])).stderr).toMatch(/NotFound/);
    // A secondary's holder pod: made, looked at and deleted in the pair's namespace.
    expect((await as(operator, ['get', 'pod', 'blockmirror-secondary-x', '-n', 'default'])).stderr).toMatch(/NotFound/);
    expect((await as(operator, ['delete', 'pod', 'blockmirror-secondary-x', '-n', 'default'])).stderr).toMatch(/NotFound/);
    expect((await as(sidecar, ['get', 'lease', 'blockmirror-sidecar-x', '-n', OPERATOR_NAMESPACE])).stderr).toMatch(/NotFound/);

    // Not granted.
    const refusals: [string, string[]][] = [
      [operator, ['delete', 'rp', 'db', '-n', 'default']],
      [operator, ['get', 'secrets', '-n', 'default']],
      [operator, ['delete', 'pv', 'pv-1']],
      [operator, ['get', 'storageclasses']],
      [sidecar, ['get', 'rp', '-A']],
      [sidecar, ['get', 'leases', '-n', 'default']],
      [sidecar, ['get', 'pods', '-n', OPERATOR_NAMESPACE]],
    ];
    for (const [kubeconfig, args] of refusals) {
      const r = await as(kubeconfig, args);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/forbidden/i);
    }
    // Pods: get, list, create and delete (a secondary's holder pod), nothing more.
    const can = async (verb: string, subresource = ''): Promise<string> =>
      (await as(operator, ['auth', 'can-i', verb, 'pods', '-n', 'default', ...(subresource !== '' ? [`--subresource=${subresource}`] : [])])).stdout.trim();
    expect(await Promise.all(['get', 'list', 'create', 'delete'].map((v) => can(v)))).toEqual(['yes', 'yes', 'yes', 'yes']);
    expect(await Promise.all([can('update'), can('patch'), can('get', 'log'), can('create', 'exec')])).toEqual(['no', 'no', 'no', 'no']);
    // PersistentVolumes: read, and patched for the lineage annotation only (no update or delete).
    const canPv = async (verb: string): Promise<string> => (await as(operator, ['auth', 'can-i', verb, 'persistentvolumes'])).stdout.trim();
    expect(await Promise.all(['get', 'patch', 'update', 'delete', 'create'].map((v) => canPv(v)))).toEqual(['yes', 'yes', 'no', 'no', 'no']);
    const leaseDelete = await as(operator, ['delete', 'lease', 'blockmirror-operator', '-n', OPERATOR_NAMESPACE]);
    expect(leaseDelete.stderr).toMatch(/forbidden: User "system:serviceaccount:blockmirror-system:blockmirror-operator" cannot delete resource "leases"/);
  });

  it('upgrades with a changed value, and uninstall keeps the CRD and the pairs', async () => {
    await site.helmOk(['upgrade', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE, '--set', 'operator.pollMs=5000']);
    const args = await site.kubectlOk(['get', 'deployment', `${RELEASE}-operator`, '-n', OPERATOR_NAMESPACE, '-o', 'jsonpath={.spec.template.spec.containers[0].args}']);
    expect(args).toContain('--poll-ms=5000');
    expect(await site.helmOk(['history', RELEASE, '-n', OPERATOR_NAMESPACE])).toMatch(/2\s+.*deployed\s+blockmirror-0\.1\.0/);

    await site.kubectlOk(['apply', '-f', '-'], {
      input: 'apiVersion: blockmirror.io/v1alpha1\nkind: ReplicationPair\nmetadata: { name: kept, namespace: default }\nspec: { pvcName: kept, role: secondary, mode: async }\n',
    });
    const out = await site.helmOk(['uninstall', RELEASE, '--namespace', OPERATOR_NAMESPACE]);
    expect(out).toMatch(/kept due to the resource policy/);
    expect(await site.kubectlOk(['get', 'crd', 'replicationpairs.blockmirror.io', '-o', 'name'])).toContain('replicationpairs.blockmirror.io');
    expect(await site.kubectlOk(['get', 'rp', 'kept', '-o', 'jsonpath={.spec.role}'])).toBe('secondary');
    const gone = await site.kubectl(['get', 'deployment', `${RELEASE}-operator`, '-n', OPERATOR_NAMESPACE]);
    expect(gone.stderr).toMatch(/NotFound/);
  });
});
