#!/usr/bin/env node
// Generates TypeScript types for proto/ with the same options the runtime loader uses
// (proto/loader-options.json), so the types describe exactly what the loader returns.
// Usage: node hack/gen-proto.mjs [OUT_DIR]   (default proto/gen)
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = process.argv[2] ?? join(root, 'proto', 'gen');
const options = JSON.parse(readFileSync(join(root, 'proto', 'loader-options.json'), 'utf8'));
export const protoFiles = [
  'blockmirror/control/v1/control.proto',
  'blockmirror/replication/v1/replication.proto',
];

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
  '-O', outDir,
  ...protoFiles,
];
execFileSync(join(root, 'node_modules', '.bin', 'proto-loader-gen-types'), args, { stdio: 'inherit', cwd: join(root, 'proto') });

// The generator writes the absolute path of each .proto into a header comment; make it
// relative so the committed types do not depend on where the checkout lives.
for (const entry of readdirSync(outDir, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile()) continue;
  const file = join(entry.parentPath ?? entry.path, entry.name);
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, text.split(join(root, 'proto') + '/').join(''));
}
