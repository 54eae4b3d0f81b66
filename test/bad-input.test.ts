// Hostile and broken NBD clients against a real sidecar process. Whatever a client
// sends, the sidecar must answer as the protocol says (an error reply, or a clean
// disconnect of that client alone) and every other client, the data on the volume and
// the process itself must be unaffected.
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NBD_CMD, NBD_OPT_GO, NBD_REP_ACK, NBD_REP_INFO, NbdTestClient, goPayload, type OptionReply, type Target } from './helpers/nbd-test-client.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait-for.js';

jest.setTimeout(60_000);

const KiB = 1024;
const MiB = 1024 * KiB;
const VOLUME_BYTES = 64 * MiB;
const MAX_PAYLOAD = 32 * MiB;

const IHAVEOPT = 0x49484156454f5054n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7, STRUCTURED_REPLY: 8 } as const;
const REP = { ACK: 1, SERVER: 2, INFO: 3, ERR_UNSUP: 0x80000001, ERR_INVALID: 0x80000003, ERR_UNKNOWN: 0x80000006 } as const;
const CMD_CACHE = 5;
const CMD_BLOCK_STATUS = 7;
const EINVAL = 22;
const ENOSPC = 28;
const EOVERFLOW = 75;
const CLOSE_DEADLINE_MS = 10_000;

/** Resolves when `p` does; fails the test if that takes longer than `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The server must drop this client (and only it) promptly. */
async function expectClosedByServer(c: NbdTestClient, what: string): Promise<void> {
  await within(c.closed, CLOSE_DEADLINE_MS, `server closes the connection after ${what}`);
  expect(c.isClosed).toBe(true);
}

function optionHeader(option: number, length: number, magic = IHAVEOPT): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(magic, 0);
  h.writeUInt32BE(option, 8);
  h.writeUInt32BE(length >>> 0, 12);
  return h;
}

function requestHeader(type: number, offset: number | bigint, length: number, opts: { flags?: number; cookie?: bigint; magic?: number } = {}): Buffer {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(opts.magic ?? REQUEST_MAGIC, 0);
  h.writeUInt16BE(opts.flags ?? 0, 4);
  h.writeUInt16BE(type, 6);
  h.writeBigUInt64BE(opts.cookie ?? 0x1234n, 8);
  h.writeBigUInt64BE(BigInt(offset), 16);
  h.writeUInt32BE(length >>> 0, 24);
  return h;
}

/** The error of the final reply, or the reply type when the option succeeded. */
function finalType(replies: OptionReply[]): number {
  return replies[replies.length - 1]!.type;
}

/**
 * One request on a client negotiated by hand (the helper parses replies only for
 * clients it negotiated itself): writes the request, reads the simple reply.
 */
async function rawRequest(c: NbdTestClient, type: number, offset: number, length: number, payload?: Buffer): Promise<{ error: number; data: Buffer }> {
  const cookie = BigInt(Date.now()) * 1000n + BigInt(Math.floor(Math.random() * 1000));
  c.socket.write(payload ? Buffer.concat([requestHeader(type, offset, length, { cookie }), payload]) : requestHeader(type, offset, length, { cookie }));
  const h = await c.readBytes(16);
  expect(h.readUInt32BE(0)).toBe(SIMPLE_REPLY_MAGIC);
  expect(h.readBigUInt64BE(8)).toBe(cookie);
  const error = h.readUInt32BE(4);
  const data = error === 0 && type === NBD_CMD.READ ? Buffer.from(await c.readBytes(length)) : Buffer.alloc(0);
  return { error, data };
}

/** Negotiates the export with NBD_OPT_GO on a hand-driven client; returns the size. */
async function goRaw(c: NbdTestClient, exportName: string): Promise<number> {
  const replies = await c.option(NBD_OPT_GO, goPayload(exportName));
  expect(finalType(replies)).toBe(NBD_REP_ACK);
  const info = replies.find((r) => r.type === NBD_REP_INFO && r.data.readUInt16BE(0) === 0);
  expect(info).toBeDefined();
  return Number(info!.data.readBigUInt64BE(2));
}

interface KnownData {
  offset: number;
  data: Buffer;
}

/**
 * One sidecar with a primary pair on a 64 MiB file, a long-lived good client, and data
 * written through it at a few offsets; `checkHealthy` proves all three are intact.
 */
class Fixture {
  sc!: SidecarProcess;
  dir!: string;
  target!: Target;
  good!: NbdTestClient;
  readonly name: string;
  readonly known: KnownData[] = [];
  #scratch = 40 * MiB;

  constructor(name: string) {
    this.name = name;
  }

  async setUp(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'blockmirror-bad-input-'));
    const volume = join(this.dir, 'volume.img');
    const fh = await open(volume, 'w');
    await fh.truncate(VOLUME_BYTES);
    await fh.close();
    this.sc = await SidecarProcess.start({ stateDir: join(this.dir, 'state'), args: ['--log-level', 'debug'] });
    await this.sc.cli('pair', 'create', this.name, '--volume', volume, '--role', 'primary', '--nbd-listen', '127.0.0.1:0');
    const { nbdAddress } = await this.sc.status(this.name);
    expect(nbdAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    this.target = { tcp: nbdAddress };
    this.good = await NbdTestClient.connectExport(this.target, this.name);
    expect(this.good.size).toBe(VOLUME_BYTES);
    // Aligned, unaligned, and right at the end of the volume.
    for (const [offset, length] of [
      [0, 64 * KiB],
      [1 * MiB + 512, 12 * KiB + 7],
      [33 * MiB, 4 * KiB],
      [VOLUME_BYTES - 8 * KiB, 8 * KiB],
    ] as const) {
      const data = randomBytes(length);
      expect((await this.good.write(offset, data)).error).toBe(0);
      this.known.push({ offset, data });
    }
    expect((await this.good.flush()).error).toBe(0);
  }

  async tearDown(): Promise<void> {
    if (this.good && !this.good.isClosed) await within(this.good.disconnect(), CLOSE_DEADLINE_MS, 'good client disconnects');
    if (this.sc) {
      const exit = await within(this.sc.stop(), 30_000, 'sidecar stops');
      expect(exit).toEqual({ code: 0, signal: null });
    }
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  /** Fresh bytes in a region no case touches. */
  scratch(length: number): number {
    const at = this.#scratch;
    this.#scratch += length;
    if (this.#scratch > 56 * MiB) this.#scratch = 40 * MiB;
    return at;
  }

  async checkHealthy(): Promise<void> {
    // (c) the process is alive.
    expect(this.sc.child.exitCode).toBeNull();
    expect(this.sc.child.signalCode).toBeNull();
    // (a) the long-lived client still works.
    expect(this.good.isClosed).toBe(false);
    const data = randomBytes(4 * KiB + 123);
    const at = this.scratch(8 * KiB);
    expect((await within(this.good.write(at, data), 10_000, 'good client write')).error).toBe(0);
    const back = await within(this.good.read(at, data.length), 10_000, 'good client read');
    expect(back.error).toBe(0);
    expect(back.data.equals(data)).toBe(true);
    // (b) the known data is intact.
    for (const k of this.known) {
      const r = await this.good.read(k.offset, k.data.length);
      expect(r.error).toBe(0);
      expect(r.data.equals(k.data)).toBe(true);
    }
    // No connection leaks: the broken clients are gone, only the good one remains.
    await waitFor('broken connections to be released', async () => (await this.sc.status(this.name)).nbdConnections === 1, { timeoutMs: 10_000, intervalMs: 100 });
    expect(this.sc.child.exitCode).toBeNull();
  }

  /** A client past the greeting and client flags, in option haggling. */
  async haggling(flags = 3): Promise<NbdTestClient> {
    const c = await NbdTestClient.open(this.target);
    await c.readGreeting();
    c.sendClientFlags(flags);
    return c;
  }

  async protocolErrorsTotal(): Promise<number> {
    const res = await fetch(`http://${this.sc.addresses.metrics}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    let total = 0;
    for (const line of text.split('\n')) {
      const m = /^blockmirror_nbd_protocol_errors_total(\{[^}]*\})?\s+(\S+)$/.exec(line);
      if (m) total += Number(m[2]);
    }
    return total;
  }
}

describe('NBD handshake: malformed and hostile clients', () => {
  const f = new Fixture('handshake');
  beforeAll(() => f.setUp());
  afterAll(() => f.tearDown());
  afterEach(() => f.checkHealthy());

  it('disconnects a client that sends garbage instead of client flags', async () => {
    const c = await NbdTestClient.open(f.target);
    await c.readGreeting();
    c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await expectClosedByServer(c, 'garbage client flags');
  });

  it.each([
    ['an unknown bit', 0x4],
    ['a known bit plus an unknown one', 0x1 | 0x8],
    ['the top bit', 0x80000000],
  ])('disconnects a client whose flags have %s', async (_what, flags) => {
    const c = await f.haggling(flags);
    await expectClosedByServer(c, `client flags 0x${flags.toString(16)}`);
  });

  it('disconnects on a bad option magic', async () => {
    const c = await f.haggling();
    c.socket.write(Buffer.concat([optionHeader(OPT.LIST, 0, 0x49484156454f5055n)]));
    await expectClosedByServer(c, 'bad option magic');
  });

  it('disconnects on an option longer than 64 KiB without waiting for its data', async () => {
    const c = await f.haggling();
    // Only the header: the server must not wait for (or buffer) 4 GiB of option data.
    c.socket.write(optionHeader(OPT.GO, 0xffffffff));
    await expectClosedByServer(c, 'option length 0xffffffff');
    const d = await f.haggling();
    d.socket.write(Buffer.concat([optionHeader(99, 64 * KiB + 1), Buffer.alloc(100)]));
    await expectClosedByServer(d, 'option length 64 KiB + 1');
  });

  it('accepts an option of exactly 64 KiB (unknown: ERR_UNSUP) and carries on', async () => {
    const c = await f.haggling();
    const replies = await c.option(99, randomBytes(64 * KiB));
    expect(finalType(replies)).toBe(REP.ERR_UNSUP);
    expect(await goRaw(c, f.name)).toBe(VOLUME_BYTES);
    await c.disconnect();
  });

  it('answers unknown and unsupported options with NBD_REP_ERR_UNSUP and the session continues', async () => {
    const c = await f.haggling();
    for (const [option, data] of [
      [99, Buffer.alloc(0)],
      [0x7fffffff, Buffer.from('some payload')],
      [OPT.STARTTLS, Buffer.alloc(0)],
      [OPT.STRUCTURED_REPLY, Buffer.alloc(0)],
    ] as const) {
      const replies = await c.option(option, data);
      expect(replies).toHaveLength(1);
      expect(replies[0]!.option).toBe(option);
      expect(replies[0]!.type).toBe(REP.ERR_UNSUP);
    }
    expect(await goRaw(c, f.name)).toBe(VOLUME_BYTES);
    const k = f.known[1]!;
    const r = await rawRequest(c, NBD_CMD.READ, k.offset, k.data.length);
    expect(r.error).toBe(0);
    expect(r.data.equals(k.data)).toBe(true);
    await c.disconnect();
  });

  it('NBD_OPT_LIST with data is ERR_INVALID; without data it lists the export', async () => {
    const c = await f.haggling();
    expect(finalType(await c.option(OPT.LIST, Buffer.from('x')))).toBe(REP.ERR_INVALID);
    const replies = await c.option(OPT.LIST);
    expect(finalType(replies)).toBe(REP.ACK);
    const names = replies
      .filter((r) => r.type === REP.SERVER)
      .map((r) => {
        const n = r.data.readUInt32BE(0);
        return r.data.toString('utf8', 4, 4 + n);
      });
    expect(names).toContain(f.name);
    expect(await goRaw(c, f.name)).toBe(VOLUME_BYTES);
    await c.disconnect();
  });

  it('NBD_OPT_INFO and NBD_OPT_GO for an unknown export are ERR_UNKNOWN and the session continues', async () => {
    const c = await f.haggling();
    expect(finalType(await c.option(OPT.INFO, goPayload('no-such-export')))).toBe(REP.ERR_UNKNOWN);
    expect(finalType(await c.option(OPT.GO, goPayload('no-such-export')))).toBe(REP.ERR_UNKNOWN);
    const info = await c.option(OPT.INFO, goPayload(f.name));
    expect(finalType(info)).toBe(REP.ACK);
    expect(await goRaw(c, f.name)).toBe(VOLUME_BYTES);
    await c.disconnect();
  });

  it('a malformed NBD_OPT_GO payload is ERR_INVALID and the session continues', async () => {
    const name = Buffer.from(f.name);
    const nameLen = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n >>> 0, 0);
      return b;
    };
    const u16 = (n: number): Buffer => {
      const b = Buffer.alloc(2);
      b.writeUInt16BE(n, 0);
      return b;
    };
    const c = await f.haggling();
    for (const payload of [
      Buffer.alloc(0), // nothing at all
      Buffer.from([0, 0, 0]), // shorter than a name length
      Buffer.concat([nameLen(name.length), name]), // no request count
      Buffer.concat([nameLen(0xffffffff), name, u16(0)]), // name length beyond the option
      Buffer.concat([nameLen(name.length + 1), name, u16(0)]), // name length one too long
      Buffer.concat([nameLen(name.length), name, u16(3), u16(1)]), // 3 requests announced, 1 given
      Buffer.concat([nameLen(name.length), name, u16(0), Buffer.from('trailing')]), // trailing bytes
    ]) {
      const replies = await c.option(OPT.GO, payload);
      expect({ payload: payload.toString('hex'), type: finalType(replies) }).toEqual({ payload: payload.toString('hex'), type: REP.ERR_INVALID });
      expect(replies).toHaveLength(1);
    }
    expect(await goRaw(c, f.name)).toBe(VOLUME_BYTES);
    const r = await rawRequest(c, NBD_CMD.READ, f.known[0]!.offset, 4096);
    expect(r.data.equals(f.known[0]!.data.subarray(0, 4096))).toBe(true);
    await c.disconnect();
  });

  it('NBD_OPT_ABORT is acknowledged, then the server closes', async () => {
    const c = await f.haggling();
    const replies = await c.option(OPT.ABORT);
    expect(replies.map((r) => [r.option, r.type])).toEqual([[OPT.ABORT, REP.ACK]]);
    await expectClosedByServer(c, 'NBD_OPT_ABORT');
  });

  it('NBD_OPT_EXPORT_NAME with an unknown name disconnects', async () => {
    const c = await f.haggling();
    c.socket.write(Buffer.concat([optionHeader(OPT.EXPORT_NAME, 'nope'.length), Buffer.from('nope')]));
    await expectClosedByServer(c, 'NBD_OPT_EXPORT_NAME "nope"');
  });

  it('NBD_OPT_EXPORT_NAME with the right name enters transmission (the old way still works)', async () => {
    const c = await f.haggling();
    c.socket.write(Buffer.concat([optionHeader(OPT.EXPORT_NAME, Buffer.byteLength(f.name)), Buffer.from(f.name)]));
    // NBD_FLAG_C_NO_ZEROES was given: size (8) + transmission flags (2), no padding.
    const reply = await c.readBytes(10);
    expect(Number(reply.readBigUInt64BE(0))).toBe(VOLUME_BYTES);
    const k = f.known[2]!;
    const r = await rawRequest(c, NBD_CMD.READ, k.offset, k.data.length);
    expect(r.data.equals(k.data)).toBe(true);
    await c.disconnect();
  });

  it('survives clients that vanish during the handshake', async () => {
    // Before reading the greeting.
    const a = await NbdTestClient.open(f.target);
    a.destroy();
    // Half the client flags.
    const b = await NbdTestClient.open(f.target);
    await b.readGreeting();
    b.socket.write(Buffer.from([0, 0]));
    b.destroy();
    // Half an option header.
    const c = await f.haggling();
    c.socket.write(optionHeader(OPT.GO, 100).subarray(0, 10));
    c.destroy();
    // An option header announcing data that never comes.
    const d = await f.haggling();
    d.socket.write(Buffer.concat([optionHeader(OPT.GO, 1000), Buffer.alloc(10)]));
    d.destroy();
    await Promise.all([a.closed, b.closed, c.closed, d.closed]);
  });

  it('counts the protocol errors in blockmirror_nbd_protocol_errors_total', async () => {
    expect(await f.protocolErrorsTotal()).toBeGreaterThan(0);
  });
});

describe('NBD transmission: malformed and hostile requests', () => {
  const f = new Fixture('transmission');
  beforeAll(() => f.setUp());
  afterAll(() => f.tearDown());
  afterEach(() => f.checkHealthy());

  it('disconnects on a bad request magic', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    c.socket.write(requestHeader(NBD_CMD.READ, 0, 4096, { magic: 0x25609514 }));
    await expectClosedByServer(c, 'bad request magic');
  });

  it('disconnects on a reply magic sent as a request (a confused client)', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    c.socket.write(Buffer.concat([requestHeader(NBD_CMD.READ, 0, 4096, { magic: SIMPLE_REPLY_MAGIC }), randomBytes(64)]));
    await expectClosedByServer(c, 'reply magic as request');
  });

  it('answers unknown commands with EINVAL and the session continues', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    for (const type of [99, 0xffff, CMD_CACHE, CMD_BLOCK_STATUS]) {
      const r = await c.request(type, 0, 4096);
      expect({ type, error: r.error }).toEqual({ type, error: EINVAL });
    }
    const k = f.known[0]!;
    const r = await c.read(k.offset, k.data.length);
    expect(r.error).toBe(0);
    expect(r.data.equals(k.data)).toBe(true);
    await c.disconnect();
  });

  it('answers unknown command flags with EINVAL, consuming a WRITE payload without applying it', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    for (const flags of [1 << 2, 1 << 3, 1 << 8, 0x8000]) {
      expect((await c.request(NBD_CMD.READ, 0, 4096, { flags })).error).toBe(EINVAL);
      expect((await c.request(NBD_CMD.FLUSH, 0, 0, { flags })).error).toBe(EINVAL);
    }
    const k = f.known[1]!;
    const junk = randomBytes(k.data.length);
    expect((await c.request(NBD_CMD.WRITE, k.offset, junk.length, { flags: 0x8000, payload: junk })).error).toBe(EINVAL);
    // The payload was consumed: the next request parses; and nothing was written.
    const r = await c.read(k.offset, k.data.length);
    expect(r.error).toBe(0);
    expect(r.data.equals(k.data)).toBe(true);
    await c.disconnect();
  });

  it('READ past the end is EINVAL; a READ ending exactly at the end succeeds', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    expect((await c.read(VOLUME_BYTES - 512, 1024)).error).toBe(EINVAL);
    expect((await c.read(VOLUME_BYTES, 1)).error).toBe(EINVAL);
    expect((await c.read(VOLUME_BYTES + 4096, 4096)).error).toBe(EINVAL);
    const tail = f.known[3]!;
    const r = await c.read(VOLUME_BYTES - tail.data.length, tail.data.length);
    expect(r.error).toBe(0);
    expect(r.data.equals(tail.data)).toBe(true);
    await c.disconnect();
  });

  it('READ and WRITE at offsets near 2^64 are refused, not wrapped', async () => {
    const c = await NbdTestClient.open(f.target);
    await c.readGreeting();
    c.sendClientFlags(3);
    await goRaw(c, f.name);
    for (const offset of [0xfffffffffffff000n, 0x8000000000000000n, 0x20000000000000n]) {
      for (const [type, payload, expected] of [
        [NBD_CMD.READ, undefined, EINVAL],
        [NBD_CMD.WRITE, randomBytes(4096), ENOSPC],
      ] as const) {
        const cookie = 77n;
        c.socket.write(payload ? Buffer.concat([requestHeader(type, offset, 4096, { cookie }), payload]) : requestHeader(type, offset, 4096, { cookie }));
        const h = await within(c.readBytes(16), 10_000, `reply to ${type} at ${offset}`);
        expect(h.readUInt32BE(0)).toBe(SIMPLE_REPLY_MAGIC);
        expect({ offset: offset.toString(16), type, error: h.readUInt32BE(4) }).toEqual({ offset: offset.toString(16), type, error: expected });
      }
    }
    await c.disconnect();
  });

  it('WRITE and WRITE_ZEROES past the end are ENOSPC and change nothing', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    const tail = f.known[3]!;
    const junk = randomBytes(8 * KiB);
    expect((await c.write(VOLUME_BYTES - 4 * KiB, junk)).error).toBe(ENOSPC);
    expect((await c.write(VOLUME_BYTES, junk.subarray(0, 512))).error).toBe(ENOSPC);
    expect((await c.request(NBD_CMD.WRITE_ZEROES, VOLUME_BYTES - 4 * KiB, 8 * KiB)).error).toBe(ENOSPC);
    expect((await c.request(NBD_CMD.WRITE_ZEROES, VOLUME_BYTES + MiB, 1)).error).toBe(ENOSPC);
    const r = await c.read(tail.offset, tail.data.length);
    expect(r.error).toBe(0);
    expect(r.data.equals(tail.data)).toBe(true);
    await c.disconnect();
  });

  it('READ larger than 32 MiB is EOVERFLOW; exactly 32 MiB is served', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    expect((await c.read(0, MAX_PAYLOAD + 1)).error).toBe(EOVERFLOW);
    expect((await c.read(0, 0xffffffff)).error).toBe(EOVERFLOW);
    const r = await c.read(0, MAX_PAYLOAD);
    expect(r.error).toBe(0);
    expect(r.data.length).toBe(MAX_PAYLOAD);
    expect(r.data.subarray(0, f.known[0]!.data.length).equals(f.known[0]!.data)).toBe(true);
    await c.disconnect();
  });

  it('WRITE larger than 32 MiB (up to 64 MiB): payload drained, EOVERFLOW, nothing written, session continues', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    // Over the known data at offset 0: if any of it were applied, checkHealthy would see it.
    const big = randomBytes(MAX_PAYLOAD + 4096);
    expect((await c.write(0, big)).error).toBe(EOVERFLOW);
    const small = randomBytes(4096);
    const at = f.scratch(4096);
    expect((await c.write(at, small)).error).toBe(0);
    const r = await c.read(at, small.length);
    expect(r.data.equals(small)).toBe(true);
    // Largest drainable size.
    expect((await c.write(0, Buffer.alloc(64 * MiB, 0xee))).error).toBe(EOVERFLOW);
    const k = f.known[0]!;
    expect((await c.read(k.offset, k.data.length)).data.equals(k.data)).toBe(true);
    await c.disconnect();
  });

  it('WRITE larger than 64 MiB disconnects without waiting for the payload', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    const pending = c.request(NBD_CMD.WRITE, 0, 64 * MiB + 1).then(
      (r) => r,
      (err: Error) => err,
    );
    await expectClosedByServer(c, 'WRITE of 64 MiB + 1');
    expect(await pending).toBeInstanceOf(Error);
    const d = await NbdTestClient.connectExport(f.target, f.name);
    const pending2 = d.request(NBD_CMD.WRITE, 0, 0xffffffff, { payload: randomBytes(1 * MiB) }).then(
      (r) => r,
      (err: Error) => err,
    );
    await expectClosedByServer(d, 'WRITE of 4 GiB - 1');
    expect(await pending2).toBeInstanceOf(Error);
  });

  it('NBD_CMD_DISC: requests in flight are answered, then the server closes', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    const writes: { at: number; data: Buffer; reply: Promise<{ error: number }> }[] = [];
    for (let i = 0; i < 8; i++) {
      // Large FUA writes go through the thread pool and an fdatasync: still in flight when DISC is parsed.
      const data = randomBytes(1 * MiB);
      const at = f.scratch(1 * MiB);
      writes.push({ at, data, reply: c.write(at, data, true) });
    }
    const reads = [c.read(f.known[0]!.offset, f.known[0]!.data.length)];
    // DISC right behind them, in the same burst; the client keeps its side open.
    c.socket.write(requestHeader(NBD_CMD.DISC, 0, 0, { cookie: 0n }));
    for (const w of writes) expect((await within(w.reply, 20_000, 'reply to a write sent before DISC')).error).toBe(0);
    const rr = await within(reads[0]!, 20_000, 'reply to a read sent before DISC');
    expect(rr.data.equals(f.known[0]!.data)).toBe(true);
    await expectClosedByServer(c, 'NBD_CMD_DISC');
    // The acknowledged writes are on the volume.
    for (const w of writes) expect((await f.good.read(w.at, w.data.length)).data.equals(w.data)).toBe(true);
  });

  it('NBD_CMD_DISC followed by a half-close: in-flight requests are still answered', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    const writes: { at: number; data: Buffer; reply: Promise<{ error: number }> }[] = [];
    for (let i = 0; i < 8; i++) {
      const data = randomBytes(1 * MiB);
      const at = f.scratch(1 * MiB);
      writes.push({ at, data, reply: c.write(at, data, true) });
    }
    // DISC, then shutdown(SHUT_WR) of the client's side, as NbdTestClient.disconnect() does. The
    // protocol: the server MUST handle all outstanding requests before closing.
    const disconnected = c.disconnect();
    const results = await Promise.allSettled(writes.map((w) => w.reply));
    await within(disconnected, CLOSE_DEADLINE_MS, 'close after DISC + half-close');
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.error : (r.reason as Error).message))).toEqual(writes.map(() => 0));
  });

  it('counts the protocol errors in blockmirror_nbd_protocol_errors_total', async () => {
    expect(await f.protocolErrorsTotal()).toBeGreaterThan(0);
  });
});

describe('NBD: clients that vanish mid-request, and many clients at once', () => {
  const f = new Fixture('abrupt');
  beforeAll(() => f.setUp());
  afterAll(() => f.tearDown());
  afterEach(() => f.checkHealthy());

  it('a client that dies after a WRITE header and half its payload leaves nothing behind', async () => {
    const at = f.scratch(64 * KiB);
    const before = await f.good.read(at, 64 * KiB);
    const c = await NbdTestClient.connectExport(f.target, f.name);
    const payload = randomBytes(64 * KiB);
    // Handed to the kernel (so they reach the server) before the connection goes away.
    await new Promise<void>((resolve) => c.socket.write(Buffer.concat([requestHeader(NBD_CMD.WRITE, at, payload.length, { cookie: 9n }), payload.subarray(0, payload.length / 2)]), () => resolve()));
    c.destroy();
    await c.closed;
    await waitFor('the server to drop the connection', async () => (await f.sc.status(f.name)).nbdConnections === 1);
    // An incomplete WRITE is never applied.
    expect((await f.good.read(at, 64 * KiB)).data.equals(before.data)).toBe(true);
  });

  it('a client that dies after a header and half of the next header', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    const first = c.read(f.known[0]!.offset, 4096);
    await new Promise<void>((resolve) => c.socket.write(requestHeader(NBD_CMD.READ, 0, 4096, { cookie: 0xfeedn }).subarray(0, 14), () => resolve()));
    expect((await first).error).toBe(0);
    c.destroy();
    await c.closed;
  });

  it('a client that sends a WRITE header with payload and closes (FIN) before the payload is complete', async () => {
    const c = await NbdTestClient.connectExport(f.target, f.name);
    const at = f.scratch(256 * KiB);
    const pending = c
      .request(NBD_CMD.WRITE, at, 256 * KiB)
      .then((r) => r)
      .catch((e: Error) => e);
    c.socket.write(randomBytes(100 * KiB));
    c.socket.end();
    await within(c.closed, CLOSE_DEADLINE_MS, 'server closes after the client half-closed mid-payload');
    expect(await pending).toBeInstanceOf(Error);
  });

  it('serves 20 concurrent clients writing and reading at once', async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => NbdTestClient.connectExport(f.target, f.name)));
    await waitFor('21 connections', async () => (await f.sc.status(f.name)).nbdConnections === 21);
    // Each client owns a 256 KiB region in 8-24 MiB and keeps 16 requests in flight.
    await Promise.all(
      clients.map(async (c, i) => {
        const base = 8 * MiB + i * 256 * KiB;
        const blocks = Array.from({ length: 16 }, () => randomBytes(16 * KiB));
        const writes = await Promise.all(blocks.map((b, j) => c.write(base + j * 16 * KiB, b, j % 4 === 0)));
        expect(writes.every((w) => w.error === 0)).toBe(true);
        const reads = await Promise.all(blocks.map((_, j) => c.read(base + j * 16 * KiB, 16 * KiB)));
        reads.forEach((r, j) => {
          expect(r.error).toBe(0);
          expect(r.data.equals(blocks[j]!)).toBe(true);
        });
        // And mixed: overwrite half while reading the other half.
        const again = blocks.map((b, j) => (j % 2 === 0 ? randomBytes(16 * KiB) : b));
        const mixed = await Promise.all(again.map((b, j) => (j % 2 === 0 ? c.write(base + j * 16 * KiB, b) : c.read(base + j * 16 * KiB, 16 * KiB))));
        mixed.forEach((r, j) => {
          expect(r.error).toBe(0);
          if (j % 2 === 1) expect(r.data.equals(again[j]!)).toBe(true);
        });
        const check = await c.read(base, 256 * KiB);
        expect(check.data.equals(Buffer.concat(again))).toBe(true);
      }),
    );
    await Promise.all(clients.map((c) => within(c.disconnect(), CLOSE_DEADLINE_MS, 'concurrent client disconnects')));
  });

  it('survives 20 concurrent clients that all misbehave differently', async () => {
    const tasks = Array.from({ length: 20 }, async (_, i) => {
      const c = await NbdTestClient.connectExport(f.target, f.name);
      switch (i % 4) {
        case 0:
          c.socket.write(requestHeader(NBD_CMD.READ, 0, 1, { magic: 0 }));
          await expectClosedByServer(c, 'bad magic (concurrent)');
          return;
        case 1:
          expect((await c.read(VOLUME_BYTES, 4096)).error).toBe(EINVAL);
          await c.disconnect();
          return;
        case 2:
          c.socket.write(requestHeader(NBD_CMD.WRITE, f.scratch(4096), 4096).subarray(0, 20));
          c.destroy();
          await c.closed;
          return;
        default: {
          const w = await c.write(VOLUME_BYTES - 512, randomBytes(4096));
          expect(w.error).toBe(ENOSPC);
          await c.disconnect();
        }
      }
    });
    await Promise.all(tasks);
  });
});
