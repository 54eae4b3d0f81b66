#!/usr/bin/env node
// Generates TypeScript types for proto/ with the same options the runtime loader uses
// (proto/loader-options.json), so the types describe exactly what the loader returns.
// The CSI spec's csi.proto and the kubelet's plugin registration api.proto are not in
// the repo: they are read from their pinned Go modules (proto/csi-spec.json,
// proto/plugin-registration.json) in the Go module cache, which hack/install-csi.sh fills.
// Usage: node hack/gen-proto.mjs [OUT_DIR]   (default proto/gen)
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = process.argv[2] ?? join(root, 'proto', 'gen');
const options = JSON.parse(readFileSync(join(root, 'proto', 'loader-options.json'), 'utf8'));
export const protoFiles = [
  'blockmirror/control/v1/control.proto',
  'blockmirror/replication/v1/replication.proto',
  'csi.proto',
];

// The folder of a pinned Go module: `go mod download` prints it (and fetches the module
// if the cache lacks it).
function goModule(pinFile) {
  const pin = JSON.parse(readFileSync(join(root, 'proto', pinFile), 'utf8'));
  const ref = `${pin.module}@${pin.version}`;
  return { ...pin, ref, dir: JSON.parse(execFileSync('go', ['mod', 'download', '-json', ref], { encoding: 'utf8', cwd: tmpdir() })).Dir };
}
const csiSpec = goModule('csi-spec.json');
const registration = goModule('plugin-registration.json');

rmSync(outDir, { recursive: true, force: true });
const args = [
  `--longs=${options.longs}`,
  `--enums=${options.enums}`,
  ...(options.defaults ? ['--defaults'] : []),
  ...(options.oneofs ? ['--oneofs'] : []),
  ...(options.keepCase ? ['--keepCase'] : []),
  '--grpcLib=@grpc/grpc-js',
  '--importFileExtension=.js',
  '-I', join(root, 'proto'),
  '-I', csiSpec.dir,
  '-I', registration.dir,
  '-O', outDir,
  ...protoFiles,
  registration.file,
];
execFileSync(join(root, 'node_modules', '.bin', 'proto-loader-gen-types'), args, { stdio: 'inherit', cwd: join(root, 'proto') });
// The generator names a root file after its .proto; "api.ts" says nothing, so the
// kubelet's registration API gets its own name.
renameSync(join(outDir, 'api.ts'), join(outDir, 'plugin-registration.ts'));

// The generator writes the absolute path of each .proto into a header comment; make it
// relative (csi.proto and api.proto: to their modules) so the committed types do not
// depend on where the checkout or the Go module cache lives.
for (const entry of readdirSync(outDir, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile()) continue;
  const file = join(entry.parentPath ?? entry.path, entry.name);
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, text.split(join(root, 'proto') + '/').join('').split(csiSpec.dir + '/').join(csiSpec.ref + '/').split(registration.dir + '/').join(registration.ref + '/'));
}
