#!/usr/bin/env node
// Generates crds/blockmirror.io_replicationpairs.yaml from the TypeScript types in
// operator/api/replication-pair.ts, so the types are the one source of truth, and the
// Helm chart's copy of it (charts/blockmirror/templates/crd.yaml: the same CRD behind
// crds.enabled, kept on uninstall).
// Usage: node hack/gen-crd.mjs           write both
//        node hack/gen-crd.mjs --check   exit 1 when a committed file differs
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGenerator } from 'ts-json-schema-generator';
import { stringify } from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const crdPath = join(root, 'crds', 'blockmirror.io_replicationpairs.yaml');
export const chartCrdPath = join(root, 'charts', 'blockmirror', 'templates', 'crd.yaml');

function schemaOf(type) {
  const gen = createGenerator({
    path: join(root, 'operator', 'api', 'replication-pair.ts'),
    tsconfig: join(root, 'tsconfig.json'),
    type,
    expose: 'none',
    topRef: false,
    jsDoc: 'extended',
    additionalProperties: true,
    skipTypeCheck: true,
  });
  return toStructural(gen.createSchema(type));
}

// Kubernetes wants a structural schema: no $schema, numbers typed integer where whole,
// and enums of numbers typed like their values.
function toStructural(node) {
  if (Array.isArray(node)) return node.map(toStructural);
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$schema' || k === 'markdownDescription' || k === 'definitions') continue;
    if (k === 'additionalProperties' && v === true) continue;
    out[k] = toStructural(v);
  }
  if (Array.isArray(out.enum) && out.enum.every((x) => Number.isInteger(x))) out.type = 'integer';
  return out;
}

// Rules the types cannot say. Transition rules (oldSelf) run on updates only.
const specRules = [
  { rule: "self.role == 'secondary' || has(self.remote)", message: 'a primary needs spec.remote (the remote sidecar endpoint)' },
  { rule: "!has(self.consistencyGroup) || self.mode == 'async'", message: 'spec.consistencyGroup needs mode async' },
  { rule: 'self.pvcName == oldSelf.pvcName', message: 'spec.pvcName cannot change after creation' },
  // A force or a discard applies to the role change it came with, never to a later one.
  { rule: "!has(self.forcePromote) || !self.forcePromote || self.role == 'primary'", message: 'spec.forcePromote applies to a promotion: set it with role primary, and drop it when the role goes back to secondary' },
  { rule: "!has(self.discardMyData) || !self.discardMyData || self.role == 'secondary'", message: "spec.discardMyData makes this side a secondary its peer overwrites: set spec.role secondary with it, and drop it before promoting this side" },
  {
    rule: '(has(self.blockSize) ? self.blockSize : 65536) == (has(oldSelf.blockSize) ? oldSelf.blockSize : 65536)',
    message: 'spec.blockSize cannot change after creation',
  },
];

function crdObject() {
  const spec = schemaOf('ReplicationPairSpec');
  spec['x-kubernetes-validations'] = specRules;
  const status = schemaOf('ReplicationPairStatus');
  // Conditions are a map keyed by type, as in every built-in API.
  status.properties.conditions['x-kubernetes-list-type'] = 'map';
  status.properties.conditions['x-kubernetes-list-map-keys'] = ['type'];
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'replicationpairs.blockmirror.io', labels: { 'app.kubernetes.io/part-of': 'blockmirror' } },
    spec: {
      group: 'blockmirror.io',
      scope: 'Namespaced',
      names: { kind: 'ReplicationPair', listKind: 'ReplicationPairList', plural: 'replicationpairs', singular: 'replicationpair', shortNames: ['rp'], categories: ['blockmirror'] },
      versions: [
        {
          name: 'v1alpha1',
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            // The role the sidecar holds; the spec's is the wish (shown with -o wide).
            { name: 'Role', type: 'string', jsonPath: '.status.role' },
            { name: 'Mode', type: 'string', jsonPath: '.spec.mode' },
            { name: 'State', type: 'string', jsonPath: '.status.state' },
            { name: 'Out-of-sync', type: 'string', jsonPath: '.status.outOfSync' },
            { name: 'RPO', type: 'string', jsonPath: '.status.rpo' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
            { name: 'Spec-Role', type: 'string', jsonPath: '.spec.role', priority: 1 },
            { name: 'Generation', type: 'string', jsonPath: '.status.generation', priority: 1 },
            { name: 'Peer-Generation', type: 'string', jsonPath: '.status.peerGeneration', priority: 1 },
          ],
          schema: {
            openAPIV3Schema: {
              description: 'Block-level replication of one PersistentVolumeClaim to a remote cluster.',
              type: 'object',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec,
                status,
              },
            },
          },
        },
      ],
    },
  };
  return crd;
}

const HEADER = '# Generated by hack/gen-crd.mjs from operator/api/replication-pair.ts. Do not edit.\n';

export function renderCrd() {
  return HEADER + stringify(crdObject(), { lineWidth: 0 });
}

// Helm never upgrades files in a chart's crds/ folder, so the chart renders the CRD as a
// template; `keep` stops `helm uninstall` from deleting it, and with it every pair.
export function renderChartCrd() {
  const crd = crdObject();
  crd.metadata.annotations = { 'helm.sh/resource-policy': 'keep' };
  return `${HEADER}{{- if .Values.crds.enabled }}\n${stringify(crd, { lineWidth: 0 })}{{- end }}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outputs = [
    [crdPath, renderCrd()],
    [chartCrdPath, renderChartCrd()],
  ];
  for (const [path, text] of outputs) {
    if (process.argv.includes('--check')) {
      let committed = '';
      try {
        committed = readFileSync(path, 'utf8');
      } catch {
        // missing: reported below
      }
      if (committed !== text) {
        console.error(`${path} is out of date with operator/api/replication-pair.ts: run node hack/gen-crd.mjs`);
        process.exitCode = 1;
      }
    } else {
      writeFileSync(path, text);
    }
  }
}
