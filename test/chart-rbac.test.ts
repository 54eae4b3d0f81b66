import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFile, rm, mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { CHART, KubeSite, OperatorProcess, OPERATOR_NAMESPACE, RELEASE, type PairObject } from './helpers/kube-site.js';
import { sparseFile } from './helpers/replication-harness.js';
import type { RunResult } from './helpers/run-cli.js';
import { REPO_ROOT, SidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait-for.js';

// Least privilege of the chart's RBAC, shown with its own ServiceAccounts' tokens against
// a real kube-apiserver (etcd, RBAC and the chart's ValidatingAdmissionPolicy as in a
// cluster): every grant is one the README's table ties to code; the operator reads only
// the Secrets operator.peerTlsSecrets lists, and a pair naming another gets a condition;
// a sidecar, with a token bound to a pod on its node as the kubelet gives it, writes its
// own node's Lease and nothing else, and the real sidecar still registers with it.

/** Namespaces: one the chart grants a pair's TLS Secret in, one it does not. */
const GRANTED = 'granted';
const OTHER = 'other';
const SECRET = 'peer-tls';
const ALL_FEATURES = join(REPO_ROOT, 'test', 'fixtures', 'chart-all-features.yaml');
const PEER_TLS_VALUES = ['--set', `operator.peerTlsSecrets[0].namespace=${GRANTED}`, '--set', `operator.peerTlsSecrets[0].names={${SECRET}}`];
const LEASE_PREFIX = 'blockmirror-sidecar-';

const cleanup = new CleanupStack();
const track = cleanup.track.bind(cleanup);
let work: string;
let site: KubeSite;
let operator: string;

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}
interface RbacObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: Rule[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string }[];
}

/** Runs kubectl with another identity's kubeconfig (the last --kubeconfig wins). */
function as(kubeconfig: string, args: string[], input?: string): Promise<RunResult> {
  return site.kubectl(['--kubeconfig', kubeconfig, ...args], input === undefined ? {} : { input });
}

function expectRefused(r: RunResult, why: RegExp): void {
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(why);
}

function expectDone(r: RunResult): void {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
}

/** A registration Lease as the sidecar writes it, for `node` (label and holder `as`, by default the node). */
function leaseManifest(name: string, node: string, opts: { labelNode?: string; control?: string } = {}): string {
  return JSON.stringify({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name,
      namespace: OPERATOR_NAMESPACE,
      labels: { 'app.kubernetes.io/component': 'sidecar', 'blockmirror.io/node': opts.labelNode ?? node },
      annotations: { 'blockmirror.io/control-endpoint': opts.control ?? '10.0.0.1:7400' },
    },
    spec: { holderIdentity: opts.labelNode ?? node, leaseDurationSeconds: 40 },
  });
}

/**
 * The chart's rules as "who|where|resource|names|verb" lines: who from the bindings, where
 * "cluster" (ClusterRoleBinding), "release namespace" (a Role there) or
 * "peerTlsSecrets" (a Role in another namespace), names "listed" for those Roles' resourceNames.
 */
function renderedGrants(manifests: string): string[] {
  const objects = parseAllDocuments(manifests)
    .map((d) => d.toJSON() as RbacObject | null)
    .filter((o): o is RbacObject => o !== null && typeof o.kind === 'string');
  const who = (sa: string): string => sa.replace(`${RELEASE}-`, '');
  const out: string[] = [];
  for (const binding of objects.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')) {
    const ns = binding.metadata.namespace;
    const role = objects.find((o) => o.kind === binding.roleRef!.kind && o.metadata.name === binding.roleRef!.name && (o.kind === 'ClusterRole' || o.metadata.namespace === ns));
    expect(role).toBeDefined();
    const where = binding.kind === 'ClusterRoleBinding' ? 'cluster' : ns === OPERATOR_NAMESPACE ? 'release namespace' : 'peerTlsSecrets';
    for (const subject of binding.subjects ?? []) {
      for (const rule of role!.rules ?? []) {
        for (const group of rule.apiGroups ?? []) {
          for (const resource of rule.resources ?? []) {
            const names = rule.resourceNames === undefined ? '' : where === 'peerTlsSecrets' ? 'listed' : [...rule.resourceNames].sort().join(',');
            for (const verb of rule.verbs) out.push([who(subject.name), where, group === '' ? resource : `${group}/${resource}`, names, verb].join('|'));
          }
        }
      }
    }
  }
  return out.sort();
}

/** The README's RBAC table: the same lines, and for each the code it names ([file, function]). */
async function readmeGrants(): Promise<{ grants: string[]; uses: [string, string][] }> {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const grants: string[] = [];
  const uses: [string, string][] = [];
  for (const line of readme.split('\n').filter((l) => /^\| (operator|sidecar) \|/.test(l))) {
    const [who, whereCell, resourceCell, verbs, usedBy] = line.split('|').slice(1, -1).map((c) => c.trim()) as [string, string, string, string, string];
    const where = whereCell.includes('peerTlsSecrets') ? 'peerTlsSecrets' : whereCell;
    const resource = /^`([^`]+)`/.exec(resourceCell)![1]!;
    const only = /\(only (?:`([^`]+)`|the names listed)\)/.exec(resourceCell);
    const names = only === null ? '' : (only[1] ?? 'listed');
    for (const verb of verbs.split(',').map((v) => v.trim())) grants.push([who, where, resource, names, verb].join('|'));
    const refs = [...usedBy.matchAll(/`([\w./-]+\.ts)` `([\w.#]+)`/g)].map((m) => [m[1]!, m[2]!] as [string, string]);
    expect(refs.length).toBeGreaterThan(0);
    uses.push(...refs);
  }
  return { grants: grants.sort(), uses };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'bm-chart-rbac-'));
  track(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
  site = await KubeSite.start('rbac', join(work, 'control-plane'), { install: 'none' });
  track('control plane', () => site.stop());
  for (const ns of [GRANTED, OTHER]) await site.kubectlOk(['create', 'namespace', ns]);
  await site.helmOk(['install', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE, '--wait=false', ...PEER_TLS_VALUES]);
  // Secrets the operator must and must not read: the granted one, another beside it, the
  // same name elsewhere, and one in the release namespace. None holds a usable certificate:
  // only whether it can be read matters here.
  for (const [ns, name] of [
    [GRANTED, SECRET],
    [GRANTED, 'database-password'],
    [OTHER, SECRET],
    [OPERATOR_NAMESPACE, 'anything'],
  ] as const) {
    await site.kubectlOk(['create', 'secret', 'generic', name, '-n', ns, '--from-literal=tls.crt=not-a-certificate']);
  }
  operator = await site.serviceAccountKubeconfig(`${RELEASE}-operator`);
}, 180_000);

afterAll(() => cleanup.releaseAll(), 60_000);

describe("the chart's RBAC", () => {
  it("grants exactly the README's table, default and with every feature on, and each row names code that is there", async () => {
    const { grants, uses } = await readmeGrants();
    for (const extra of [[], ['-f', ALL_FEATURES]]) {
      const manifests = await site.helmOk(['template', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE, ...PEER_TLS_VALUES, ...extra]);
      expect(renderedGrants(manifests)).toEqual(grants);
      // The per-node narrowing RBAC cannot express is there too.
      expect(manifests).toMatch(/kind: ValidatingAdmissionPolicy\n/);
      expect(manifests).toMatch(/kind: ValidatingAdmissionPolicyBinding\n/);
    }
    // Without operator.peerTlsSecrets the operator may read no Secret at all.
    const bare = renderedGrants(await site.helmOk(['template', RELEASE, CHART, '--namespace', OPERATOR_NAMESPACE]));
    expect(bare.filter((g) => g.includes('secrets'))).toEqual([]);
    expect(grants.filter((g) => !g.includes('secrets'))).toEqual(bare);
    for (const [file, fn] of uses) {
      expect(await stat(join(REPO_ROOT, file)).then(() => file)).toBe(file);
      const name = fn.split('.').pop()!;
      expect([file, (await readFile(join(REPO_ROOT, file), 'utf8')).includes(`${name}(`)]).toEqual([file, true]);
    }
  });

  it('the operator reads the Secret operator.peerTlsSecrets lists, and no other', async () => {
    expectDone(await as(operator, ['get', 'secret', SECRET, '-n', GRANTED, '-o', 'name']));
    const refusals: string[][] = [
      ['get', 'secret', 'database-password', '-n', GRANTED],
      ['get', 'secret', SECRET, '-n', OTHER],
      ['get', 'secret', 'anything', '-n', OPERATOR_NAMESPACE],
      ['get', 'secret', SECRET, '-n', 'default'],
      ['get', 'secrets', '-n', GRANTED],
      ['get', 'secrets', '-A'],
    ];
    for (const args of refusals) expectRefused(await as(operator, args), /forbidden: User "system:serviceaccount:blockmirror-system:blockmirror-operator" cannot (get|list) resource "secrets"/);
    // The same as the authorizer answers it (a complement to the calls above).
    const can = async (...args: string[]): Promise<string> => (await as(operator, ['auth', 'can-i', ...args])).stdout.trim();
    expect(await can('get', `secrets/${SECRET}`, '-n', GRANTED)).toBe('yes');
    expect([await can('get', 'secrets/database-password', '-n', GRANTED), await can('watch', 'secrets', '-n', GRANTED), await can('get', 'secrets', '-n', OTHER)]).toEqual(['no', 'no', 'no']);
  });

  it("the operator writes its leader Lease, and no sidecar's", async () => {
    expectDone(await as(operator, ['create', '-f', '-'], JSON.stringify({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'blockmirror-operator', namespace: OPERATOR_NAMESPACE }, spec: { holderIdentity: 'op-1' } })));
    expectDone(await as(operator, ['replace', '-f', '-'], JSON.stringify({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'blockmirror-operator', namespace: OPERATOR_NAMESPACE }, spec: { holderIdentity: 'op-2' } })));
    expect(await site.kubectlOk(['get', 'lease', 'blockmirror-operator', '-n', OPERATOR_NAMESPACE, '-o', 'jsonpath={.spec.holderIdentity}'])).toBe('op-2');
    await site.kubectlOk(['create', '-f', '-'], { input: leaseManifest(`${LEASE_PREFIX}node-x`, 'node-x') });
    expectRefused(await as(operator, ['replace', '-f', '-'], leaseManifest(`${LEASE_PREFIX}node-x`, 'node-x', { control: '10.6.6.6:7400' })), /"blockmirror-sidecar-node-x" is forbidden: .*cannot (get|update) resource "leases"/);
    expectRefused(await as(operator, ['delete', 'lease', 'blockmirror-operator', '-n', OPERATOR_NAMESPACE]), /cannot delete resource "leases"/);
    expectDone(await as(operator, ['get', 'leases', '-n', OPERATOR_NAMESPACE, '-o', 'name']));
    expect(await site.kubectlOk(['get', 'lease', `${LEASE_PREFIX}node-x`, '-n', OPERATOR_NAMESPACE, '-o', 'jsonpath={.metadata.annotations.blockmirror\\.io/control-endpoint}'])).toBe('10.0.0.1:7400');
  });

  it("a sidecar's pod-bound token writes its own node's Lease, and neither another node's nor the operator's", async () => {
    const n1 = await site.serviceAccountKubeconfig(`${RELEASE}-sidecar`, { node: 'node-1' });
    const own = `${LEASE_PREFIX}node-1`;
    expectDone(await as(n1, ['create', '-f', '-'], leaseManifest(own, 'node-1')));
    expectDone(await as(n1, ['replace', '-f', '-'], leaseManifest(own, 'node-1', { control: '10.0.0.2:7400' })));
    expect(await site.kubectlOk(['get', 'lease', own, '-n', OPERATOR_NAMESPACE, '-o', 'jsonpath={.metadata.annotations.blockmirror\\.io/control-endpoint}'])).toBe('10.0.0.2:7400');

    const notOwn = /denied request: the sidecar of node node-1 may write only its own Lease blockmirror-sidecar-node-1, not /;
    await site.kubectlOk(['create', '-f', '-'], { input: leaseManifest(`${LEASE_PREFIX}node-2`, 'node-2') });
    expectRefused(await as(n1, ['create', '-f', '-'], leaseManifest(`${LEASE_PREFIX}node-3`, 'node-1')), notOwn);
    expectRefused(await as(n1, ['replace', '-f', '-'], leaseManifest(`${LEASE_PREFIX}node-2`, 'node-2', { control: '10.6.6.6:7400' })), notOwn);
    expectRefused(await as(n1, ['delete', 'lease', `${LEASE_PREFIX}node-2`, '-n', OPERATOR_NAMESPACE]), notOwn);
    const operatorLease = JSON.stringify({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'blockmirror-operator', namespace: OPERATOR_NAMESPACE }, spec: { holderIdentity: 'node-1' } });
    expectRefused(await as(n1, ['replace', '-f', '-'], operatorLease), notOwn);
    expectRefused(await as(n1, ['delete', 'lease', 'blockmirror-operator', '-n', OPERATOR_NAMESPACE]), notOwn);
    // Its own Lease labelled for another node would divert the operator's calls for that node.
    expectRefused(await as(n1, ['replace', '-f', '-'], leaseManifest(own, 'node-1', { labelNode: 'node-2' })), /must be labelled blockmirror\.io\/node=node-1 and held by node-1/);
    // No patch at all (the sidecar replaces), and nothing outside its Leases.
    expectRefused(await as(n1, ['patch', 'lease', own, '-n', OPERATOR_NAMESPACE, '--type=merge', '-p', '{"spec":{"holderIdentity":"node-1"}}']), /cannot patch resource "leases"/);
    expectRefused(await as(n1, ['get', 'secrets', '-n', OPERATOR_NAMESPACE]), /cannot list resource "secrets"/);
    expectRefused(await as(n1, ['get', 'leases', '-n', 'default']), /cannot list resource "leases"/);

    // Nothing the refusals touched changed.
    expect(await site.kubectlOk(['get', 'lease', `${LEASE_PREFIX}node-2`, '-n', OPERATOR_NAMESPACE, '-o', 'jsonpath={.metadata.annotations.blockmirror\\.io/control-endpoint}'])).toBe('10.0.0.1:7400');
    expect(await site.kubectlOk(['get', 'lease', 'blockmirror-operator', '-n', OPERATOR_NAMESPACE, '-o', 'jsonpath={.spec.holderIdentity}'])).toBe('op-2');
    expect((await site.kubectl(['get', 'lease', `${LEASE_PREFIX}node-3`, '-n', OPERATOR_NAMESPACE])).stderr).toMatch(/NotFound/);

    // A token bound to no pod (kubectl create token) names no node: it writes no Lease.
    const unbound = await site.serviceAccountKubeconfig(`${RELEASE}-sidecar`);
    expectRefused(await as(unbound, ['create', '-f', '-'], leaseManifest(`${LEASE_PREFIX}node-4`, 'node-4')), /a blockmirror sidecar writes Leases only with a token bound to a pod on a node/);
    expectDone(await as(unbound, ['get', 'leases', '-n', OPERATOR_NAMESPACE, '-o', 'name']));

    // A clean stop deletes its own registration.
    expectDone(await as(n1, ['delete', 'lease', own, '-n', OPERATOR_NAMESPACE]));
  });

  it('the real sidecar registers and unregisters with its node-bound token; named as another node, it registers nothing', async () => {
    const kubeconfig = await site.serviceAccountKubeconfig(`${RELEASE}-sidecar`, { node: 'node-5' });
    const registered = async (node: string): Promise<string> =>
      (await site.kubectl(['get', 'lease', `${LEASE_PREFIX}${node}`, '-n', OPERATOR_NAMESPACE, '-o', 'jsonpath={.metadata.annotations.blockmirror\\.io/control-endpoint}'])).stdout;

    const good = await SidecarProcess.start({ stateDir: join(work, 'state-5'), args: ['--register-node', 'node-5', '--register-namespace', OPERATOR_NAMESPACE, '--kubeconfig', kubeconfig] });
    const stopGood = track('sidecar node-5', async () => void (await good.stop()));
    expect(await waitFor('node-5 registered', async () => (await registered('node-5')) || undefined, { timeoutMs: 20_000, intervalMs: 200 })).toBe(good.addresses.control);
    await stopGood();
    await waitFor('node-5 unregistered on a clean stop', async () => (await registered('node-5')) === '', { timeoutMs: 20_000, intervalMs: 200 });

    // The same token, claiming to be node-6: refused by the admission policy, and it says so.
    const impostor = await SidecarProcess.start({ stateDir: join(work, 'state-6'), args: ['--register-node', 'node-6', '--register-namespace', OPERATOR_NAMESPACE, '--kubeconfig', kubeconfig] });
    track('sidecar node-6', async () => void (await impostor.stop()));
    const warning = await waitFor('the refusal in the log', () => impostor.log.find((l) => l.includes('sidecar registration failed')), { timeoutMs: 20_000, intervalMs: 100 });
    expect(warning).toContain('may write only its own Lease blockmirror-sidecar-node-5, not blockmirror-sidecar-node-6');
    expect(await registered('node-6')).toBe('');
  });

  it('the real operator with its token: a pair whose TLS Secret is not granted is Ready=False TLSSecretForbidden; a granted one is read', async () => {
    const kubeconfig = await site.serviceAccountKubeconfig(`${RELEASE}-sidecar`, { node: 'node-7' });
    const sidecar = await SidecarProcess.start({ stateDir: join(work, 'state-7'), args: ['--register-node', 'node-7', '--register-namespace', OPERATOR_NAMESPACE, '--kubeconfig', kubeconfig] });
    track('sidecar node-7', async () => void (await sidecar.stop()));
    // The Lease the tests above wrote as op-2 would keep this operator waiting out its term.
    await site.kubectlOk(['delete', 'lease', 'blockmirror-operator', '-n', OPERATOR_NAMESPACE]);
    const op = await OperatorProcess.start(site, [], operator);
    track('operator', () => op.stop());
    for (const ns of [GRANTED, OTHER]) {
      const volume = join(work, `${ns}.img`);
      await sparseFile(volume, 4 * 1024 * 1024);
      await site.kubectlOk(['apply', '-f', '-'], { input: pairManifests(ns, volume, 'node-7') });
    }
    const ready = async (ns: string): Promise<{ reason: string; message: string } | undefined> => {
      const pair = await site.getPair('db', ns);
      return (pair?.status as PairObject['status'])?.conditions?.find((c) => c.type === 'Ready');
    };
    const forbidden = await waitFor(`${OTHER}/db Ready=False`, async () => ((await ready(OTHER))?.reason === 'TLSSecretForbidden' ? ready(OTHER) : undefined), { timeoutMs: 30_000, intervalMs: 250 });
    expect(forbidden!.message).toContain(`the operator may not read Secret ${OTHER}/${SECRET}`);
    expect(forbidden!.message).toContain(`add {namespace: ${OTHER}, names: [${SECRET}]} there and run helm upgrade`);
    // Granted: read, and its content checked (this one holds no key or CA).
    const granted = await waitFor(`${GRANTED}/db read its Secret`, async () => ((await ready(GRANTED))?.reason === 'TLSSecretInvalid' ? ready(GRANTED) : undefined), { timeoutMs: 30_000, intervalMs: 250 });
    expect(granted!.message).toBe(`Secret ${GRANTED}/${SECRET} lacks tls.key, ca.crt`);
    // Neither made anything on the sidecar, and the operator is still running.
    expect(await sidecar.cli('pair', 'list')).not.toMatch(/db/);
    expect(op.child.exitCode).toBeNull();
  });
});

/** A local PV on `node`, its pre-bound claim in `ns`, and a primary pair naming the TLS Secret. */
function pairManifests(ns: string, path: string, node: string): string {
  return `apiVersion: v1
kind: PersistentVolume
metadata: { name: db-${ns} }
spec:
  capacity: { storage: 4Mi }
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: blockmirror-local
  volumeMode: Block
  local: { path: ${path} }
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions: [{ key: kubernetes.io/hostname, operator: In, values: [${node}] }]
  claimRef: { namespace: ${ns}, name: db }
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: db, namespace: ${ns} }
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: blockmirror-local
  volumeMode: Block
  volumeName: db-${ns}
  resources: { requests: { storage: 4Mi } }
---
apiVersion: blockmirror.io/v1alpha1
kind: ReplicationPair
metadata: { name: db, namespace: ${ns} }
spec:
  pvcName: db
  role: primary
  mode: sync
  remote: { endpoint: "127.0.0.1:9", tlsSecretName: ${SECRET} }
`;
}
