import { afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { NbdTestClient } from './helpers/nbd-test-client.js';
import { sha256File, sparseFile } from './helpers/replication-harness.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait-for.js';

// A stalled peer must not let the primary's sidecar pin what the application throws at
// it: memory is bounded by bytes (the NBD connection's 64 MiB of payload in flight, the
// pair's replication budget), not by request count (128 x 32 MiB per connection).

const MiB = 1 << 20;
const cleanup = new CleanupStack();
afterEach(() => cleanup.releaseAll(), 60_000);

async function rssBytes(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

describe('memory under a stalled peer', () => {
  it('stays bounded while 320 MiB of writes wait on a sync secondary that stopped answering, and heals after', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bm-mem-'));
    cleanup.track('temp', () => rm(dir, { recursive: true, force: true }));
    await sparseFile(join(dir, 'a.img'), 320 * MiB);
    await sparseFile(join(dir, 'b.img'), 320 * MiB);
    const b = await SidecarProcess.start({ stateDir: join(dir, 'sb') });
    cleanup.track('sidecar b', () => b.kill9());
    await b.cli('pair', 'create', 'db', '--volume', join(dir, 'b.img'), '--role', 'secondary');
    const proxy = await FaultProxy.start({ target: b.addresses.peer });
    cleanup.track('proxy', () => proxy.close());
    const a = await SidecarProcess.start({ stateDir: join(dir, 'sa') });
    cleanup.track('sidecar a', () => a.kill9());
    // A long write timeout: writes wait for the stalled secondary instead of being marked out of sync.
    await a.cli('pair', 'create', 'db', '--volume', join(dir, 'a.img'), '--role', 'primary', '--peer', proxy.address, '--nbd-listen', '127.0.0.1:0', '--write-timeout-ms', '60000');
    await waitFor('in sync', async () => (await a.rpcStatus('db')).state === 'InSync', { timeoutMs: 60_000 });
    const client = await NbdTestClient.connectExport({ tcp: (await a.rpcStatus('db')).nbdAddress }, 'db');
    cleanup.track('client', async () => client.destroy());
    const pid = a.child.pid!;
    const before = await rssBytes(pid);

    proxy.stall();
    const chunk = randomBytes(8 * MiB);
    const writes = Array.from({ length: 40 }, (_, i) => client.write(i * 8 * MiB, chunk));
    // The sidecar takes what its bounds allow and stops reading; sample it meanwhile.
    let peak = before;
    const until = Date.now() + 6000;
    while (Date.now() < until) {
      peak = Math.max(peak, await rssBytes(pid));
      await new Promise((r) => setTimeout(r, 100));
    }
    // 64 MiB of NBD payload, the 32 MiB budget (on the wire and in gRPC's buffers), slabs:
    // well below the 320 MiB offered (measured: +90 MiB; before the bounds, +920 MiB for
    // 512 MiB offered, as each write was also copied on its way into gRPC).
    expect(peak - before).toBeLessThan(200 * MiB);
    proxy.heal();
    const replies = await Promise.all(writes);
    expect(replies.every((r) => r.error === 0)).toBe(true);
    await waitFor('in sync again', async () => {
      const s = await a.rpcStatus('db');
      return s.state === 'InSync' && s.outOfSyncBytes === 0;
    }, { timeoutMs: 120_000 });
    expect(await sha256File(join(dir, 'b.img'))).toBe(await sha256File(join(dir, 'a.img')));
  });
});
