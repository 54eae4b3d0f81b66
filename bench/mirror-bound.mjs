#!/usr/bin/env node
// The least a synchronous mirror written in Node must do, as a yardstick for
// bench/sync-replication.sh: the sidecar's own NBD server and Volume (from dist/), with
// an export whose WRITE is a local pwrite plus the payload sent over one plain TCP
// socket to a receiver process that pwrites it and answers 8 bytes; the NBD reply
// waits for that answer. No gRPC, no protobuf, no checksum, no dirty tracking, no
// durability, no ordering rules: nothing a real mirror can drop. Whatever it reaches
// beside the standalone export bounds what any Node mirror can reach on this machine.
// Not a product path: a measuring stick only.
// Usage: node bench/mirror-bound.mjs serve VOLUME MIRROR_FILE   prints "nbd HOST:PORT" when ready
//        node bench/mirror-bound.mjs receive FILE                 (spawned by serve) prints "port N"
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { openSync, writevSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const HEADER = 16; // u32 length, u32 zero, u64 offset (little endian)
const [cmd, ...args] = process.argv.slice(2);

/** Concatenated `parts` written at `offset`, short writes included. */
function pwritevAll(fd, parts, offset) {
  let bufs = parts;
  let at = offset;
  while (bufs.length > 0) {
    let n = writevSync(fd, bufs, at);
    at += n;
    while (bufs.length > 0 && n >= bufs[0].length) {
      n -= bufs[0].length;
      bufs = bufs.slice(1);
    }
    if (n > 0) bufs = [bufs[0].subarray(n), ...bufs.slice(1)];
  }
}

function receive(file) {
  const fd = openSync(file, 'r+');
  const ack = Buffer.alloc(8);
  const server = createServer({ noDelay: true }, (s) => {
    let queue = [];
    let have = 0;
    let need = -1;
    let offset = 0;
    s.on('data', (chunk) => {
      queue.push(chunk);
      have += chunk.length;
      for (;;) {
        if (need < 0) {
          if (have < HEADER) return;
          const head = queue.length === 1 ? queue[0] : Buffer.concat(queue);
          need = head.readUInt32LE(0);
          offset = Number(head.readBigUInt64LE(8));
          queue = [head.subarray(HEADER)];
          have -= HEADER;
        }
        if (have < need) return;
        const parts = [];
        for (let left = need; left > 0; ) {
          const q = queue[0];
          if (q.length <= left) {
            parts.push(q);
            queue.shift();
            left -= q.length;
          } else {
            parts.push(q.subarray(0, left));
            queue[0] = q.subarray(left);
            left = 0;
          }
        }
        have -= need;
        need = -1;
        pwritevAll(fd, parts, offset);
        s.write(ack);
      }
    });
    s.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1', () => console.log(`port ${server.address().port}`));
  process.on('SIGTERM', () => process.exit(0));
}

async function serve(volumePath, mirrorFile) {
  const { Volume } = await import(join(ROOT, 'dist/sidecar/volume/volume.js'));
  const { NbdServer } = await import(join(ROOT, 'dist/sidecar/nbd/nbd-server.js'));
  const { createLogger } = await import(join(ROOT, 'dist/sidecar/log/create-logger.js'));
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'receive', mirrorFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`receiver exited (${code})`)));
    createInterface({ input: child.stdout }).once('line', (l) => resolve(Number(l.split(' ')[1])));
  });
  const peer = connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise((resolve, reject) => peer.once('connect', resolve).once('error', reject));
  const waiting = [];
  let acked = 0;
  peer.on('data', (c) => {
    acked += c.length;
    for (; acked >= 8; acked -= 8) waiting.shift()();
  });
  const volume = await Volume.open(volumePath);
  const exp = {
    name: 'bound',
    description: 'mirror bound (bench only)',
    size: volume.size,
    readOnly: false,
    read: (offset, length) => volume.read(offset, length),
    async write(offset, chunks, length) {
      await volume.writev(offset, chunks, length);
      const head = Buffer.alloc(HEADER);
      head.writeUInt32LE(length, 0);
      head.writeBigUInt64LE(BigInt(offset), 8);
      peer.cork();
      peer.write(head);
      for (const c of chunks) peer.write(c);
      peer.uncork();
      await new Promise((resolve) => waiting.push(resolve));
    },
    writeZeroes: (offset, length) => volume.writeZeroes(offset, length),
    trim: async () => undefined,
    flush: () => volume.flush(),
  };
  const nbd = new NbdServer(exp, { logger: createLogger({ level: 'warn' }) });
  await nbd.listen({ tcp: '127.0.0.1:0' });
  console.log(`nbd ${nbd.tcpAddress}`);
  process.on('SIGTERM', () => {
    child.kill('SIGTERM');
    process.exit(0);
  });
}

if (cmd === 'receive' && args.length === 1) receive(args[0]);
else if (cmd === 'serve' && args.length === 2) await serve(args[0], args[1]);
else {
  console.error('usage: mirror-bound.mjs serve VOLUME MIRROR_FILE | receive FILE');
  process.exit(2);
}
