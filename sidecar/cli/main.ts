#!/usr/bin/env node
import { CommanderError } from 'commander';
import { buildProgram } from './build-program.js';

// Many NBD requests are in flight at once and each positional write runs on libuv's
// thread pool; its default of 4 threads would cap queue depth. Set before first use.
process.env.UV_THREADPOOL_SIZE ??= '16';

const program = buildProgram();
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  process.stderr.write(`blockmirror: error: ${(err as Error).message}\n`);
  process.exit(1);
}
