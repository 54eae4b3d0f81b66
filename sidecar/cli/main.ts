#!/usr/bin/env node
import { CommanderError } from 'commander';
import { buildProgram } from './build-program.js';

// Many NBD requests are in flight at once; reads, large writes and fdatasyncs run on
// libuv's thread pool, whose default of 4 threads would cap queue depth. Set before
// first use.
process.env.UV_THREADPOOL_SIZE ??= '16';

// grpc-js hands an IP-address target to TLS as the server name, which Node flags with
// DEP0123 on every call; the certificate is still verified against the IP's SAN, so the
// warning only confuses CLI users. Every other warning passes through.
process.removeAllListeners('warning');
process.on('warning', (w: Error & { code?: string }) => {
  if (w.code !== 'DEP0123') process.stderr.write(`${w.name}: ${w.message}\n`);
});

const program = buildProgram();
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  process.stderr.write(`blockmirror: error: ${(err as Error).message}\n`);
  process.exit(1);
}
