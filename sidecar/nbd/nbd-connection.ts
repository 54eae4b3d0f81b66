import type { Socket } from 'node:net';
import type { Logger } from 'winston';
import { ByteQueue, type TakenChunks } from './byte-queue.js';
import {
  Cmd,
  CmdFlag,
  CLIENT_FLAGS_KNOWN,
  Errno,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  IHAVEOPT,
  Info,
  NBDMAGIC,
  Opt,
  OPTION_HEADER_BYTES,
  OPT_REPLY_MAGIC,
  Rep,
  REPLY_HEADER_BYTES,
  REQUEST_HEADER_BYTES,
  REQUEST_MAGIC,
  SIMPLE_REPLY_MAGIC,
  TransmissionFlag,
} from './nbd-constants.js';
import type { NbdExport } from './nbd-export.js';
import { nbdErrnoOf } from './nbd-errno.js';
import type { Slab } from './slab-pool.js';

export interface NbdConnectionOptions {
  /** Finds an export by name ('' is the default export). */
  resolve(name: string): NbdExport | undefined;
  /** Names for NBD_OPT_LIST. */
  list(): string[];
  logger: Logger;
  /** Largest READ/WRITE payload accepted (advertised as the maximum block size). */
  maxPayload: number;
  /** Requests processed concurrently before the connection stops reading. */
  maxInFlight: number;
  /**
   * READ and WRITE payload bytes in flight before the connection stops reading: with a
   * slow peer behind the export, a count of requests alone would let 128 × 32 MiB pile up.
   */
  maxInFlightBytes: number;
  onProtocolError?(reason: string): void;
}

const MAX_OPTION_BYTES = 64 * 1024;
// A WRITE larger than the maximum is answered with an error after its payload is
// drained, up to this size; beyond it the client is hopelessly off and is disconnected.
const MAX_DRAIN_BYTES = 64 << 20;
const PREFERRED_BLOCK = 4096;
const KNOWN_CMD_FLAGS = CmdFlag.FUA | CmdFlag.NO_HOLE;

type Phase = 'clientFlags' | 'options' | 'transmission' | 'closing';

interface PendingRequest {
  flags: number;
  type: number;
  cookie: Buffer;
  offset: number;
  length: number;
}

/**
 * One NBD client: fixed-newstyle handshake, option haggling, then the transmission
 * phase with many requests in flight. Replies may complete out of order, as the
 * protocol allows; ordering between overlapping requests is the client's business.
 */
export class NbdConnection {
  readonly #socket: Socket;
  readonly #opts: NbdConnectionOptions;
  readonly #in = new ByteQueue();
  #phase: Phase = 'clientFlags';
  #noZeroes = false;
  #export: NbdExport | undefined;
  #inFlight = 0;
  #inFlightBytes = 0;
  #paused = false;
  #pendingWrite: PendingRequest | null = null;
  #draining = 0;
  #drainReply: PendingRequest | null = null;
  #corked = false;
  #idle: (() => void) | null = null;
  readonly closed: Promise<void>;

  constructor(socket: Socket, opts: NbdConnectionOptions) {
    this.#socket = socket;
    this.#opts = opts;
    socket.setNoDelay(true);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('close', () => this.#in.clear());
    socket.on('error', (err) => opts.logger.debug('nbd socket error', { error: err.message }));
    // The client will send nothing more: answer what is in flight, then close our side.
    socket.on('end', () => {
      this.#phase = 'closing';
      if (this.#inFlight === 0) socket.end();
      else this.#idle = () => socket.end();
    });
    const hello = Buffer.alloc(18);
    hello.writeBigUInt64BE(NBDMAGIC, 0);
    hello.writeBigUInt64BE(IHAVEOPT, 8);
    hello.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
    socket.write(hello);
  }

  /** Bytes received from the client (a view of `slab` memory when given). */
  feed(chunk: Buffer, slab: Slab | null): void {
    // A closing connection keeps reading (to see the client's FIN) but ignores input.
    if (this.#phase === 'closing') return;
    this.#in.push(chunk, slab);
    this.#pump();
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Stops reading new requests, lets in-flight ones finish, then closes. */
  async shutdown(timeoutMs: number): Promise<void> {
    this.#phase = 'closing';
    if (this.#inFlight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => (this.#idle = resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
      ]);
    }
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 1000).unref();
    await this.closed;
  }

  #protocolError(reason: string): void {
    this.#opts.logger.warn('nbd protocol error, disconnecting client', { reason });
    this.#opts.onProtocolError?.(reason);
    this.#phase = 'closing';
    this.#socket.destroy();
  }

  #pump(): void {
    while (!this.#paused && this.#phase !== 'closing') {
      if (this.#phase === 'transmission') {
        if (!this.#stepTransmission()) return;
      } else if (this.#phase === 'options') {
        if (!this.#stepOption()) return;
      } else if (!this.#stepClientFlags()) {
        return;
      }
    }
  }

  // ---- handshake ----

  #stepClientFlags(): boolean {
    if (this.#in.length < 4) return false;
    const flags = this.#in.take(4).readUInt32BE(0);
    if ((flags & ~CLIENT_FLAGS_KNOWN) !== 0) {
      this.#protocolError(`unknown client flags 0x${flags.toString(16)}`);
      return false;
    }
    this.#noZeroes = (flags & FLAG_NO_ZEROES) !== 0;
    this.#phase = 'options';
    return true;
  }

  #stepOption(): boolean {
    if (this.#in.length < OPTION_HEADER_BYTES) return false;
    const head = this.#in.peek(OPTION_HEADER_BYTES);
    const magic = head.readBigUInt64BE(0);
    const option = head.readUInt32BE(8);
    const length = head.readUInt32BE(12);
    if (magic !== IHAVEOPT) {
      this.#protocolError('bad option magic');
      return false;
    }
    if (length > MAX_OPTION_BYTES) {
      this.#protocolError(`option ${option} length ${length} too large`);
      return false;
    }
    // Consume nothing until the whole option has arrived.
    if (this.#in.length < OPTION_HEADER_BYTES + length) return false;
    this.#in.skip(OPTION_HEADER_BYTES);
    this.#handleOption(option, Buffer.from(this.#in.take(length)));
    return true;
  }

  #handleOption(option: number, data: Buffer): void {
    switch (option) {
      case Opt.EXPORT_NAME: {
        const exp = this.#opts.resolve(data.toString('utf8'));
        if (exp === undefined) {
          // NBD_OPT_EXPORT_NAME has no error reply: the protocol says to disconnect.
          this.#protocolError(`unknown export ${JSON.stringify(data.toString('utf8'))}`);
          return;
        }
        const reply = Buffer.alloc(this.#noZeroes ? 10 : 134);
        reply.writeBigUInt64BE(BigInt(exp.size), 0);
        reply.writeUInt16BE(transmissionFlags(exp), 8);
        this.#socket.write(reply);
        this.#enterTransmission(exp);
        return;
      }
      case Opt.ABORT:
        this.#optReply(option, Rep.ACK);
        this.#phase = 'closing';
        this.#socket.end();
        return;
      case Opt.LIST: {
        if (data.length !== 0) return this.#optReply(option, Rep.ERR_INVALID, 'NBD_OPT_LIST takes no data');
        for (const name of this.#opts.list()) {
          const n = Buffer.from(name, 'utf8');
          const payload = Buffer.alloc(4 + n.length);
          payload.writeUInt32BE(n.length, 0);
          n.copy(payload, 4);
          this.#optReplyData(option, Rep.SERVER, payload);
        }
        this.#optReply(option, Rep.ACK);
        return;
      }
      case Opt.INFO:
      case Opt.GO:
        this.#handleInfoOrGo(option, data);
        return;
      default:
        this.#optReply(option, Rep.ERR_UNSUP, `option ${option} is not supported`);
    }
  }

  #handleInfoOrGo(option: number, data: Buffer): void {
    if (data.length < 6) return this.#optReply(option, Rep.ERR_INVALID, 'truncated request');
    const nameLen = data.readUInt32BE(0);
    if (4 + nameLen + 2 > data.length) return this.#optReply(option, Rep.ERR_INVALID, 'name length exceeds option');
    const name = data.toString('utf8', 4, 4 + nameLen);
    const nReq = data.readUInt16BE(4 + nameLen);
    if (data.length !== 4 + nameLen + 2 + nReq * 2) return this.#optReply(option, Rep.ERR_INVALID, 'information request count mismatch');
    const requested = new Set<number>();
    for (let i = 0; i < nReq; i++) requested.add(data.readUInt16BE(4 + nameLen + 2 + i * 2));
    const exp = this.#opts.resolve(name);
    if (exp === undefined) return this.#optReply(option, Rep.ERR_UNKNOWN, `unknown export ${JSON.stringify(name)}`);

    const info = Buffer.alloc(12);
    info.writeUInt16BE(Info.EXPORT, 0);
    info.writeBigUInt64BE(BigInt(exp.size), 2);
    info.writeUInt16BE(transmissionFlags(exp), 10);
    this.#optReplyData(option, Rep.INFO, info);
    // Block sizes are always sent: they tell clients the payload limit we enforce.
    const bs = Buffer.alloc(14);
    bs.writeUInt16BE(Info.BLOCK_SIZE, 0);
    bs.writeUInt32BE(1, 2);
    bs.writeUInt32BE(PREFERRED_BLOCK, 6);
    bs.writeUInt32BE(this.#opts.maxPayload, 10);
    this.#optReplyData(option, Rep.INFO, bs);
    if (requested.has(Info.NAME)) {
      const n = Buffer.from(exp.name, 'utf8');
      const b = Buffer.alloc(2 + n.length);
      b.writeUInt16BE(Info.NAME, 0);
      n.copy(b, 2);
      this.#optReplyData(option, Rep.INFO, b);
    }
    if (requested.has(Info.DESCRIPTION) && exp.description !== '') {
      const d = Buffer.from(exp.description, 'utf8');
      const b = Buffer.alloc(2 + d.length);
      b.writeUInt16BE(Info.DESCRIPTION, 0);
      d.copy(b, 2);
      this.#optReplyData(option, Rep.INFO, b);
    }
    this.#optReply(option, Rep.ACK);
    if (option === Opt.GO) this.#enterTransmission(exp);
  }

  #enterTransmission(exp: NbdExport): void {
    this.#export = exp;
    this.#phase = 'transmission';
    this.#opts.logger.debug('nbd client entered transmission', { export: exp.name });
  }

  #optReply(option: number, type: number, message = ''): void {
    this.#optReplyData(option, type, Buffer.from(message, 'utf8'));
  }

  #optReplyData(option: number, type: number, data: Buffer): void {
    const h = Buffer.alloc(20);
    h.writeBigUInt64BE(OPT_REPLY_MAGIC, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(type, 12);
    h.writeUInt32BE(data.length, 16);
    this.#socket.write(data.length > 0 ? Buffer.concat([h, data]) : h);
  }

  // ---- transmission ----

  #stepTransmission(): boolean {
    if (this.#draining > 0) {
      this.#draining -= this.#in.skip(this.#draining);
      if (this.#draining > 0) return false;
      const r = this.#drainReply!;
      this.#drainReply = null;
      this.#reply(r.cookie, r.length > this.#opts.maxPayload ? Errno.EOVERFLOW : Errno.EINVAL);
      return true;
    }
    let req = this.#pendingWrite;
    if (req === null) {
      if (this.#in.length < REQUEST_HEADER_BYTES) return false;
      const h = this.#in.take(REQUEST_HEADER_BYTES);
      if (h.readUInt32BE(0) !== REQUEST_MAGIC) {
        this.#protocolError('bad request magic');
        return false;
      }
      req = {
        flags: h.readUInt16BE(4),
        type: h.readUInt16BE(6),
        // Copied: the header may live in a reused receive buffer.
        cookie: Buffer.from(h.subarray(8, 16)),
        offset: Number(h.readBigUInt64BE(16)),
        length: h.readUInt32BE(24),
      };
      if (req.type === Cmd.WRITE) {
        if (req.length > this.#opts.maxPayload) {
          this.#opts.onProtocolError?.('write larger than maximum');
          if (req.length > MAX_DRAIN_BYTES) {
            this.#protocolError(`write of ${req.length} bytes exceeds the maximum`);
            return false;
          }
          this.#draining = req.length;
          this.#drainReply = req;
          return true;
        }
        this.#pendingWrite = req;
      }
    }
    if (req.type === Cmd.WRITE) {
      if (this.#in.length < req.length) return false;
      this.#pendingWrite = null;
      this.#dispatch(req, this.#in.takeChunks(req.length));
    } else if (req.type === Cmd.DISC) {
      // Finish what is in flight, then close (the protocol's orderly disconnect). Reading
      // goes on, so the client's FIN is seen and the half-open socket can close.
      this.#phase = 'closing';
      if (this.#inFlight === 0) this.#socket.end();
      else this.#idle = () => this.#socket.end();
      return false;
    } else {
      this.#dispatch(req, null);
    }
    return true;
  }

  #dispatch(req: PendingRequest, data: TakenChunks | null): void {
    const exp = this.#export!;
    const error = this.#validate(exp, req);
    if (error !== Errno.OK) {
      data?.release();
      this.#opts.onProtocolError?.(`invalid request (errno ${error})`);
      this.#reply(req.cookie, error);
      return;
    }
    const fua = (req.flags & CmdFlag.FUA) !== 0;
    let op: Promise<Buffer | void>;
    switch (req.type) {
      case Cmd.READ:
        op = exp.read(req.offset, req.length);
        break;
      case Cmd.WRITE:
        op = exp.write(req.offset, data!.chunks, req.length, fua);
        break;
      case Cmd.FLUSH:
        op = exp.flush();
        break;
      case Cmd.TRIM:
        op = exp.trim(req.offset, req.length, fua);
        break;
      case Cmd.WRITE_ZEROES:
        op = exp.writeZeroes(req.offset, req.length, fua, (req.flags & CmdFlag.NO_HOLE) !== 0);
        break;
      default:
        this.#reply(req.cookie, Errno.EINVAL);
        return;
    }
    // The payload's receive memory goes back to the pool once the write is done.
    if (data !== null) op = op.finally(data.release);
    const bytes = req.type === Cmd.READ || req.type === Cmd.WRITE ? req.length : 0;
    this.#inFlight++;
    this.#inFlightBytes += bytes;
    if ((this.#inFlight >= this.#opts.maxInFlight || this.#inFlightBytes >= this.#opts.maxInFlightBytes) && !this.#paused) {
      // Backpressure: stop parsing (and let TCP push back) until requests complete.
      this.#paused = true;
      this.#socket.pause();
    }
    op.then(
      (result) => this.#complete(req.cookie, Errno.OK, result instanceof Buffer ? result : null, bytes),
      (err: unknown) => {
        this.#opts.logger.warn('nbd request failed', { type: req.type, offset: req.offset, length: req.length, error: (err as Error).message });
        this.#complete(req.cookie, nbdErrnoOf(err), null, bytes);
      },
    );
  }

  #validate(exp: NbdExport, req: PendingRequest): number {
    if ((req.flags & ~KNOWN_CMD_FLAGS) !== 0) return Errno.EINVAL;
    switch (req.type) {
      case Cmd.READ:
        if (req.length > this.#opts.maxPayload) return Errno.EOVERFLOW;
        return req.offset + req.length > exp.size ? Errno.EINVAL : Errno.OK;
      case Cmd.WRITE:
      case Cmd.WRITE_ZEROES:
        if (exp.readOnly) return Errno.EPERM;
        // The protocol asks for ENOSPC when a write reaches past the end.
        return req.offset + req.length > exp.size ? Errno.ENOSPC : Errno.OK;
      case Cmd.TRIM:
        if (exp.readOnly) return Errno.EPERM;
        return req.offset + req.length > exp.size ? Errno.EINVAL : Errno.OK;
      case Cmd.FLUSH:
        return Errno.OK;
      default:
        // CACHE, BLOCK_STATUS (no meta context negotiated) and unknown commands.
        return Errno.EINVAL;
    }
  }

  #complete(cookie: Buffer, error: number, data: Buffer | null, bytes: number): void {
    this.#inFlight--;
    this.#inFlightBytes -= bytes;
    if (!this.#socket.destroyed) this.#reply(cookie, error, data);
    if (this.#inFlight === 0 && this.#idle !== null) {
      const idle = this.#idle;
      this.#idle = null;
      idle();
    }
    if (this.#paused && this.#inFlight < this.#opts.maxInFlight / 2 && this.#inFlightBytes < this.#opts.maxInFlightBytes / 2 && this.#phase === 'transmission') {
      this.#paused = false;
      this.#socket.resume();
      this.#pump();
    }
  }

  #reply(cookie: Buffer, error: number, data: Buffer | null = null): void {
    const h = Buffer.allocUnsafe(REPLY_HEADER_BYTES);
    h.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
    h.writeUInt32BE(error, 4);
    cookie.copy(h, 8);
    // Coalesce the replies of one tick into as few syscalls as possible.
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.#socket.uncork();
      });
    }
    this.#socket.write(h);
    if (data !== null && error === Errno.OK) this.#socket.write(data);
  }
}

function transmissionFlags(exp: NbdExport): number {
  let f = TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH | TransmissionFlag.SEND_FUA | TransmissionFlag.CAN_MULTI_CONN;
  if (exp.readOnly) f |= TransmissionFlag.READ_ONLY;
  else f |= TransmissionFlag.SEND_TRIM | TransmissionFlag.SEND_WRITE_ZEROES;
  return f;
}
