import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';

const root = join(import.meta.dirname, '..', '..');

describe('the ReplicationPair CRD', () => {
  it('in crds/ and in the Helm chart is exactly what hack/gen-crd.mjs generates from operator/api/replication-pair.ts', async () => {
    // Throws (exit 1, naming the file) when the committed CRD and the types disagree.
    await expect(promisify(execFile)(process.execPath, [join(root, 'hack', 'gen-crd.mjs'), '--check'])).resolves.toBeDefined();
  });

  it('has the names, printer columns, status subresource and CEL rules users rely on', async () => {
    const crd = parse(await readFile(join(root, 'crds', 'blockmirror.io_replicationpairs.yaml'), 'utf8')) as {
      spec: { group: string; names: { shortNames: string[] }; scope: string; versions: { name: string; subresources: object; additionalPrinterColumns: { name: string; jsonPath: string; priority?: number }[]; schema: { openAPIV3Schema: { properties: { spec: { required: string[]; 'x-kubernetes-validations': { rule: string }[] } } } } }[] };
    };
    expect(crd.spec.group).toBe('blockmirror.io');
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names.shortNames).toEqual(['rp']);
    const v = crd.spec.versions[0]!;
    expect(v.name).toBe('v1alpha1');
    expect(v.subresources).toEqual({ status: {} });
    // The default columns as before; Role is the role the sidecar holds, the spec's is in -o wide.
    expect(v.additionalPrinterColumns.filter((c) => c.priority === undefined).map((c) => c.name)).toEqual(['Role', 'Mode', 'State', 'Out-of-sync', 'RPO', 'Age']);
    expect(v.additionalPrinterColumns.find((c) => c.name === 'Role')?.jsonPath).toBe('.status.role');
    expect(v.additionalPrinterColumns.filter((c) => c.priority === 1).map((c) => c.name)).toEqual(['Spec-Role', 'Generation', 'Peer-Generation']);
    const spec = v.schema.openAPIV3Schema.properties.spec;
    expect(spec.required).toEqual(['pvcName', 'role', 'mode']);
    const rules = spec['x-kubernetes-validations'].map((r) => r.rule).join('\n');
    expect(rules).toMatch(/has\(self\.remote\)[\s\S]*oldSelf\.pvcName/);
    // The role changes on a live pair (issue 18); a force or a discard goes with one role only.
    expect(rules).not.toContain('oldSelf.role');
    expect(rules).toContain("self.forcePromote || self.role == 'primary'");
    expect(rules).toContain("self.discardMyData || self.role == 'secondary'");
  });
});
