import { connect, type Socket } from 'node:net';

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const OPT_REPLY_MAGIC = 0x3e889045565a9n;
export const NBD_OPT_GO = 7;
export const NBD_REP_ACK = 1;
export const NBD_REP_INFO = 3;
export const NBD_CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, WRITE_ZEROES: 6 } as const;
export const NBD_FLAG_FUA = 1;

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export interface SimpleReply {
  error: number;
  data: Buffer;
}

export type Target = { tcp: string } | { socket: string };

/**
 * A small NBD client for tests that need control no real client gives: exact request
 * bytes, malformed input, and knowing which writes were acknowledged.
 */
export class NbdTestClient {
  readonly socket: Socket;
  #buf = Buffer.alloc(0);
  #chunks: Buffer[] = [];
  #chunkBytes = 0;
  #need = 0;
  #waiters: (() => void)[] = [];
  #ended = false;
  #cookie = 1n;
  #pending = new Map<bigint, { resolve: (r: SimpleReply) => void; reject: (e: Error) => void; readLength: number }>();
  #transmission = false;
  size = 0;
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.#chunks.push(c);
      this.#chunkBytes += c.length;
      // Join lazily, once enough has arrived for what is awaited (a 32 MiB read comes
      // in hundreds of chunks; joining on each one would be quadratic).
      if (this.#buf.length + this.#chunkBytes < this.#need) return;
      this.#join();
      if (this.#transmission) this.#drainReplies();
      this.#wake();
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.#ended = true;
        for (const p of this.#pending.values()) p.reject(new Error('connection closed'));
        this.#pending.clear();
        this.#wake();
        resolve();
      }),
    );
    socket.on('error', () => undefined);
  }

  static async open(target: Target): Promise<NbdTestClient> {
    const socket = 'tcp' in target ? connect({ host: target.tcp.replace(/:\d+$/, ''), port: Number(target.tcp.split(':').pop()) }) : connect(target.socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    return new NbdTestClient(socket);
  }

  /** Opens a connection and negotiates `exportName` with NBD_OPT_GO. */
  static async connectExport(target: Target, exportName: string): Promise<NbdTestClient> {
    const c = await NbdTestClient.open(target);
    await c.readGreeting();
    c.sendClientFlags(3);
    const replies = await c.option(NBD_OPT_GO, goPayload(exportName));
    const last = replies[replies.length - 1]!;
    if (last.type !== NBD_REP_ACK) throw new Error(`NBD_OPT_GO refused: type 0x${last.type.toString(16)} ${last.data.toString()}`);
    const exportInfo = replies.find((r) => r.type === NBD_REP_INFO && r.data.readUInt16BE(0) === 0);
    c.size = Number(exportInfo!.data.readBigUInt64BE(2));
    c.#transmission = true;
    return c;
  }

  get isClosed(): boolean {
    return this.#ended;
  }

  async readGreeting(): Promise<number> {
    const g = await this.readBytes(18);
    if (g.readBigUInt64BE(0) !== NBDMAGIC || g.readBigUInt64BE(8) !== IHAVEOPT) throw new Error('bad greeting');
    return g.readUInt16BE(16);
  }

  sendClientFlags(flags: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(flags >>> 0, 0);
    this.socket.write(b);
  }

  /** Sends an option and collects replies up to the final one (ACK or an error). */
  async option(option: number, data: Buffer = Buffer.alloc(0), magic = IHAVEOPT): Promise<OptionReply[]> {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(magic, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(data.length, 12);
    this.socket.write(Buffer.concat([h, data]));
    const out: OptionReply[] = [];
    for (;;) {
      const r = await this.readOptionReply();
      out.push(r);
      if (r.type === NBD_REP_ACK || (r.type & 0x80000000) !== 0) return out;
    }
  }

  async readOptionReply(): Promise<OptionReply> {
    const h = await this.readBytes(20);
    if (h.readBigUInt64BE(0) !== OPT_REPLY_MAGIC) throw new Error('bad option reply magic');
    const len = h.readUInt32BE(16);
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: len > 0 ? await this.readBytes(len) : Buffer.alloc(0) };
  }

  /** Sends one request; resolves with the server's reply. */
  request(type: number, offset: number, length: number, opts: { flags?: number; payload?: Buffer } = {}): Promise<SimpleReply> {
    if (this.#ended) return Promise.reject(new Error('connection closed'));
    const cookie = this.#cookie++;
    const h = Buffer.alloc(28);
    h.writeUInt32BE(0x25609513, 0);
    h.writeUInt16BE(opts.flags ?? 0, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(cookie, 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length >>> 0, 24);
    const p = new Promise<SimpleReply>((resolve, reject) => this.#pending.set(cookie, { resolve, reject, readLength: type === NBD_CMD.READ ? length : 0 }));
    this.socket.write(opts.payload ? Buffer.concat([h, opts.payload]) : h);
    return p;
  }

  write(offset: number, data: Buffer, fua = false): Promise<SimpleReply> {
    return this.request(NBD_CMD.WRITE, offset, data.length, { payload: data, flags: fua ? NBD_FLAG_FUA : 0 });
  }

  read(offset: number, length: number): Promise<SimpleReply> {
    return this.request(NBD_CMD.READ, offset, length);
  }

  flush(): Promise<SimpleReply> {
    return this.request(NBD_CMD.FLUSH, 0, 0);
  }

  /** Orderly disconnect (NBD_CMD_DISC), then wait for the server to close. */
  async disconnect(): Promise<void> {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(0x25609513, 0);
    h.writeUInt16BE(NBD_CMD.DISC, 6);
    this.socket.write(h);
    this.socket.end();
    await this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  #join(): void {
    if (this.#chunks.length === 0) return;
    this.#buf = Buffer.concat([this.#buf, ...this.#chunks]);
    this.#chunks = [];
    this.#chunkBytes = 0;
  }

  async readBytes(n: number): Promise<Buffer> {
    for (;;) {
      this.#join();
      if (this.#buf.length >= n) break;
      if (this.#ended) throw new Error(`connection closed while waiting for ${n} bytes`);
      this.#need = n;
      await new Promise<void>((r) => this.#waiters.push(r));
    }
    this.#need = 0;
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  #drainReplies(): void {
    this.#join();
    for (;;) {
      if (this.#buf.length < 16) return;
      if (this.#buf.readUInt32BE(0) !== 0x67446698) throw new Error('bad reply magic');
      const error = this.#buf.readUInt32BE(4);
      const cookie = this.#buf.readBigUInt64BE(8);
      const p = this.#pending.get(cookie);
      if (!p) throw new Error(`reply for unknown cookie ${cookie}`);
      const dataLen = error === 0 ? p.readLength : 0;
      if (this.#buf.length < 16 + dataLen) {
        this.#need = 16 + dataLen;
        return;
      }
      this.#need = 0;
      const data = Buffer.from(this.#buf.subarray(16, 16 + dataLen));
      this.#buf = this.#buf.subarray(16 + dataLen);
      this.#pending.delete(cookie);
      p.resolve({ error, data });
    }
  }
}

export function goPayload(name: string, infoRequests: number[] = []): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(4 + n.length + 2 + infoRequests.length * 2);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  b.writeUInt16BE(infoRequests.length, 4 + n.length);
  infoRequests.forEach((r, i) => b.writeUInt16BE(r, 4 + n.length + 2 + i * 2));
  return b;
}
