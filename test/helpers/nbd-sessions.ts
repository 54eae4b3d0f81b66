// Generated NBD client sessions for the fuzz tests: well-formed sessions (handshake,
// option haggling, requests) as fast-check arbitraries, their bytes, the answers the
// protocol (doc/proto.md of the NetworkBlockDevice project) says a server gives, and
// mutations that break them. Written from the protocol, not from the server's code.
import fc from 'fast-check';

export const NBDMAGIC = 0x4e42444d41474943n;
export const IHAVEOPT = 0x49484156454f5054n;
export const OPT_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;

export const OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7, STRUCTURED_REPLY: 8 } as const;
export const REP = { ACK: 1, SERVER: 2, INFO: 3, ERR_UNSUP: 0x80000001, ERR_INVALID: 0x80000003, ERR_UNKNOWN: 0x80000006 } as const;
export const INFO = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;
export const CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7 } as const;
export const CMD_FLAG_FUA = 1;
export const CMD_FLAG_NO_HOLE = 2;
export const ERRNO = { OK: 0, EPERM: 1, EINVAL: 22, ENOSPC: 28, EOVERFLOW: 75 } as const;
/** The server drains an oversized WRITE payload up to this size, and disconnects beyond it. */
export const MAX_DRAIN_BYTES = 64 << 20;

/** What the client is talking to: the export as the server should describe it. */
export interface ExportShape {
  name: string;
  description: string;
  size: number;
  readOnly: boolean;
  /** The server's maximum READ/WRITE payload. */
  maxPayload: number;
  /** The preferred block size the server advertises. */
  preferredBlock: number;
}

/** An offset relative to the export, resolved once its size is known. */
export type OffsetSpec = { from: 'start'; delta: number } | { from: 'end'; delta: number } | { from: 'tail'; delta: number } | { from: 'absolute'; value: bigint };

/** A length; `payloadLimit` lengths are relative to the server's maximum payload. */
export type LengthSpec = { kind: 'bytes'; value: number } | { kind: 'overLimit'; extra: number };

export interface RequestSpec {
  type: number;
  flags: number;
  offset: OffsetSpec;
  length: LengthSpec;
  /** WRITE payload: a pattern from this seed (cheap to generate and to shrink). */
  fill: number;
}

export type OptionSpec =
  | { kind: 'list' }
  | { kind: 'listWithData'; data: Uint8Array }
  | { kind: 'info'; known: boolean; requests: number[] }
  | { kind: 'goUnknown' }
  | { kind: 'malformedInfo'; option: 6 | 7; how: 'short' | 'nameTooLong' | 'countTooHigh' | 'trailing' }
  | { kind: 'unsupported'; option: number; data: Uint8Array };

export type EnterSpec = { kind: 'go'; byDefaultName: boolean; requests: number[] } | { kind: 'exportName'; byDefaultName: boolean } | { kind: 'abort' };

export interface SessionSpec {
  /** 0-3: any combination of the two flags the server knows. */
  clientFlags: number;
  options: OptionSpec[];
  enter: EnterSpec;
  requests: RequestSpec[];
  /** Ends with NBD_CMD_DISC. */
  disconnect: boolean;
  /** The client half-closes its side after sending everything. */
  fin: boolean;
}

const infoRequest = fc.oneof(fc.constantFrom(INFO.EXPORT, INFO.NAME, INFO.DESCRIPTION, INFO.BLOCK_SIZE), fc.integer({ min: 0, max: 0xffff }));

const option: fc.Arbitrary<OptionSpec> = fc.oneof(
  fc.constant<OptionSpec>({ kind: 'list' }),
  fc.record({ kind: fc.constant('listWithData' as const), data: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('info' as const), known: fc.boolean(), requests: fc.array(infoRequest, { maxLength: 4 }) }),
  fc.constant<OptionSpec>({ kind: 'goUnknown' }),
  fc.record({ kind: fc.constant('malformedInfo' as const), option: fc.constantFrom(6 as const, 7 as const), how: fc.constantFrom('short' as const, 'nameTooLong' as const, 'countTooHigh' as const, 'trailing' as const) }),
  fc.record({
    kind: fc.constant('unsupported' as const),
    // STARTTLS, STRUCTURED_REPLY, the meta-context and extended-header options, unknown ones.
    option: fc.oneof(fc.constantFrom(5, 8, 9, 10, 11), fc.integer({ min: 12, max: 0xffffffff })),
    data: fc.uint8Array({ maxLength: 64 }),
  }),
);

const enter: fc.Arbitrary<EnterSpec> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('go' as const), byDefaultName: fc.boolean(), requests: fc.array(infoRequest, { maxLength: 3 }) }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant('exportName' as const), byDefaultName: fc.boolean() }), weight: 3 },
  { arbitrary: fc.constant<EnterSpec>({ kind: 'abort' }), weight: 1 },
);

const offset: fc.Arbitrary<OffsetSpec> = fc.oneof(
  { arbitrary: fc.record({ from: fc.constant('start' as const), delta: fc.integer({ min: 0, max: 1 << 20 }) }), weight: 4 },
  { arbitrary: fc.record({ from: fc.constant('end' as const), delta: fc.integer({ min: -16384, max: 16384 }) }), weight: 2 },
  // The request ends right at the end of the export, or a byte or two either side.
  { arbitrary: fc.record({ from: fc.constant('tail' as const), delta: fc.integer({ min: -2, max: 2 }) }), weight: 2 },
  {
    arbitrary: fc.record({
      from: fc.constant('absolute' as const),
      value: fc.oneof(fc.constantFrom(2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n - 4096n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
    }),
    weight: 1,
  },
);

const length: fc.Arbitrary<LengthSpec> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('bytes' as const), value: fc.oneof(fc.constantFrom(0, 1, 511, 512, 4096), fc.integer({ min: 0, max: 20000 })) }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant('overLimit' as const), extra: fc.integer({ min: 1, max: 8192 }) }), weight: 1 },
);

const request: fc.Arbitrary<RequestSpec> = fc.record({
  type: fc.oneof(
    { arbitrary: fc.constantFrom(CMD.READ, CMD.WRITE, CMD.WRITE, CMD.FLUSH, CMD.TRIM, CMD.WRITE_ZEROES), weight: 12 },
    { arbitrary: fc.constantFrom(CMD.CACHE, CMD.BLOCK_STATUS), weight: 1 },
    { arbitrary: fc.integer({ min: 8, max: 0xffff }), weight: 1 },
  ),
  flags: fc.oneof({ arbitrary: fc.constantFrom(0, CMD_FLAG_FUA, CMD_FLAG_NO_HOLE, CMD_FLAG_FUA | CMD_FLAG_NO_HOLE), weight: 8 }, { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 }),
  offset,
  length,
  fill: fc.nat(255),
});

/** A well-formed session: every byte is what a correct client could send. */
export const sessionArb: fc.Arbitrary<SessionSpec> = fc.record({
  clientFlags: fc.integer({ min: 0, max: 3 }),
  options: fc.array(option, { maxLength: 4 }),
  enter,
  requests: fc.array(request, { maxLength: 24 }),
  disconnect: fc.boolean(),
  fin: fc.boolean(),
});

export const exportShapeArb: fc.Arbitrary<Omit<ExportShape, 'preferredBlock'>> = fc.record({
  name: fc.constantFrom('vol', 'db-data', 'ünïcode'),
  description: fc.constantFrom('', 'a volume'),
  size: fc.oneof(fc.constantFrom(1, 512, 4096, 65536, 65537, 1 << 20), fc.integer({ min: 1, max: 1 << 20 })),
  readOnly: fc.boolean(),
  maxPayload: fc.constantFrom(4096, 16384, 65536),
});

// ---- bytes a client sends ----

export function pattern(seed: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = (seed + i * 31 + (i >>> 8)) & 0xff;
  return b;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

function optionBytes(opt: number, data: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(IHAVEOPT, 0);
  h.writeUInt32BE(opt >>> 0, 8);
  h.writeUInt32BE(data.length, 12);
  return Buffer.concat([h, data]);
}

export function infoPayload(name: string, requests: number[]): Buffer {
  const n = Buffer.from(name, 'utf8');
  return Buffer.concat([u32(n.length), n, u16(requests.length), ...requests.map(u16)]);
}

function malformedInfoPayload(name: string, how: 'short' | 'nameTooLong' | 'countTooHigh' | 'trailing'): Buffer {
  const n = Buffer.from(name, 'utf8');
  switch (how) {
    case 'short':
      return Buffer.from([0, 0, 0]);
    case 'nameTooLong':
      return Buffer.concat([u32(n.length + 3), n, u16(0)]);
    case 'countTooHigh':
      return Buffer.concat([u32(n.length), n, u16(2), u16(INFO.NAME)]);
    case 'trailing':
      return Buffer.concat([u32(n.length), n, u16(0), Buffer.from('xyz')]);
  }
}

/** Where a request of `length` bytes starts. */
export function resolveOffset(o: OffsetSpec, size: number, length: number): bigint {
  if (o.from === 'absolute') return o.value;
  const v = o.from === 'start' ? BigInt(o.delta) : o.from === 'end' ? BigInt(size) + BigInt(o.delta) : BigInt(size) - BigInt(length) + BigInt(o.delta);
  return v < 0n ? 0n : v;
}

export function resolveLength(l: LengthSpec, maxPayload: number): number {
  return l.kind === 'bytes' ? l.value : maxPayload + l.extra;
}

export interface ResolvedRequest {
  type: number;
  flags: number;
  cookie: bigint;
  offset: bigint;
  length: number;
  data: Buffer | null;
}

export function resolveRequests(spec: SessionSpec, shape: ExportShape, cookieBase: bigint): ResolvedRequest[] {
  return spec.requests.map((r, i) => {
    const len = resolveLength(r.length, shape.maxPayload);
    return {
      type: r.type,
      flags: r.flags,
      // Unique per request, so each reply can be matched to its request.
      cookie: (cookieBase << 32n) | BigInt(i + 1),
      offset: resolveOffset(r.offset, shape.size, len),
      length: len,
      data: r.type === CMD.WRITE ? pattern(r.fill, len) : null,
    };
  });
}

export function requestBytes(r: { type: number; flags: number; cookie: bigint; offset: bigint; length: number; data: Buffer | null }): Buffer {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(REQUEST_MAGIC, 0);
  h.writeUInt16BE(r.flags, 4);
  h.writeUInt16BE(r.type, 6);
  h.writeBigUInt64BE(r.cookie, 8);
  h.writeBigUInt64BE(r.offset, 16);
  h.writeUInt32BE(r.length >>> 0, 24);
  return r.data ? Buffer.concat([h, r.data]) : h;
}

/** Everything the client sends, in order. */
export function sessionBytes(spec: SessionSpec, shape: ExportShape, requests: ResolvedRequest[]): Buffer {
  const parts: Buffer[] = [u32(spec.clientFlags)];
  for (const o of spec.options) {
    switch (o.kind) {
      case 'list':
        parts.push(optionBytes(OPT.LIST, Buffer.alloc(0)));
        break;
      case 'listWithData':
        parts.push(optionBytes(OPT.LIST, Buffer.from(o.data)));
        break;
      case 'info':
        parts.push(optionBytes(OPT.INFO, infoPayload(o.known ? shape.name : `${shape.name}-no`, o.requests)));
        break;
      case 'goUnknown':
        parts.push(optionBytes(OPT.GO, infoPayload(`${shape.name}-no`, [])));
        break;
      case 'malformedInfo':
        parts.push(optionBytes(o.option, malformedInfoPayload(shape.name, o.how)));
        break;
      case 'unsupported':
        parts.push(optionBytes(o.option, Buffer.from(o.data)));
        break;
    }
  }
  const e = spec.enter;
  if (e.kind === 'abort') {
    parts.push(optionBytes(OPT.ABORT, Buffer.alloc(0)));
    return Buffer.concat(parts);
  }
  const name = e.byDefaultName ? '' : shape.name;
  parts.push(e.kind === 'go' ? optionBytes(OPT.GO, infoPayload(name, e.requests)) : optionBytes(OPT.EXPORT_NAME, Buffer.from(name, 'utf8')));
  for (const r of requests) parts.push(requestBytes(r));
  if (spec.disconnect) parts.push(requestBytes({ type: CMD.DISC, flags: 0, cookie: 0n, offset: 0n, length: 0, data: null }));
  return Buffer.concat(parts);
}

// ---- what the server must answer ----

function optReply(opt: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(20);
  h.writeBigUInt64BE(OPT_REPLY_MAGIC, 0);
  h.writeUInt32BE(opt >>> 0, 8);
  h.writeUInt32BE(type >>> 0, 12);
  h.writeUInt32BE(data.length, 16);
  return Buffer.concat([h, data]);
}

export function transmissionFlags(shape: ExportShape): number {
  // HAS_FLAGS, SEND_FLUSH, SEND_FUA, CAN_MULTI_CONN; READ_ONLY, or SEND_TRIM and SEND_WRITE_ZEROES.
  return 1 | 4 | 8 | 256 | (shape.readOnly ? 2 : 32 | 64);
}

function infoReplies(opt: number, shape: ExportShape, requests: number[]): Buffer {
  const exp = Buffer.alloc(12);
  exp.writeUInt16BE(INFO.EXPORT, 0);
  exp.writeBigUInt64BE(BigInt(shape.size), 2);
  exp.writeUInt16BE(transmissionFlags(shape), 10);
  const bs = Buffer.alloc(14);
  bs.writeUInt16BE(INFO.BLOCK_SIZE, 0);
  bs.writeUInt32BE(1, 2);
  bs.writeUInt32BE(shape.preferredBlock, 6);
  bs.writeUInt32BE(shape.maxPayload, 10);
  const parts = [optReply(opt, REP.INFO, exp), optReply(opt, REP.INFO, bs)];
  if (requests.includes(INFO.NAME)) parts.push(optReply(opt, REP.INFO, Buffer.concat([u16(INFO.NAME), Buffer.from(shape.name, 'utf8')])));
  if (requests.includes(INFO.DESCRIPTION) && shape.description !== '') parts.push(optReply(opt, REP.INFO, Buffer.concat([u16(INFO.DESCRIPTION), Buffer.from(shape.description, 'utf8')])));
  parts.push(optReply(opt, REP.ACK));
  return Buffer.concat(parts);
}

/**
 * The server's bytes up to the transmission phase, exactly: greeting, every option's
 * replies, and the export-name reply. (Error replies carry a free-form message: only
 * their header is fixed, so those are returned as a prefix to compare plus a length
 * to skip; see `expectedHandshake`.)
 */
export type HandshakePiece = { exact: Buffer } | { errorReply: { option: number; type: number } };

export function expectedHandshake(spec: SessionSpec, shape: ExportShape): HandshakePiece[] {
  const greeting = Buffer.alloc(18);
  greeting.writeBigUInt64BE(NBDMAGIC, 0);
  greeting.writeBigUInt64BE(IHAVEOPT, 8);
  greeting.writeUInt16BE(3, 16);
  const out: HandshakePiece[] = [{ exact: greeting }];
  for (const o of spec.options) {
    switch (o.kind) {
      case 'list': {
        const n = Buffer.from(shape.name, 'utf8');
        out.push({ exact: Buffer.concat([optReply(OPT.LIST, REP.SERVER, Buffer.concat([u32(n.length), n])), optReply(OPT.LIST, REP.ACK)]) });
        break;
      }
      case 'listWithData':
        out.push({ errorReply: { option: OPT.LIST, type: REP.ERR_INVALID } });
        break;
      case 'info':
        out.push(o.known ? { exact: infoReplies(OPT.INFO, shape, o.requests) } : { errorReply: { option: OPT.INFO, type: REP.ERR_UNKNOWN } });
        break;
      case 'goUnknown':
        out.push({ errorReply: { option: OPT.GO, type: REP.ERR_UNKNOWN } });
        break;
      case 'malformedInfo':
        out.push({ errorReply: { option: o.option, type: REP.ERR_INVALID } });
        break;
      case 'unsupported':
        out.push({ errorReply: { option: o.option, type: REP.ERR_UNSUP } });
        break;
    }
  }
  const e = spec.enter;
  if (e.kind === 'abort') {
    out.push({ exact: optReply(OPT.ABORT, REP.ACK) });
  } else if (e.kind === 'go') {
    out.push({ exact: infoReplies(OPT.GO, shape, e.requests) });
  } else {
    const noZeroes = (spec.clientFlags & 2) !== 0;
    const r = Buffer.alloc(noZeroes ? 10 : 134);
    r.writeBigUInt64BE(BigInt(shape.size), 0);
    r.writeUInt16BE(transmissionFlags(shape), 8);
    out.push({ exact: r });
  }
  return out;
}

/** Checks the server's handshake bytes; returns where the transmission phase starts, or a problem. */
export function matchHandshake(out: Buffer, pieces: HandshakePiece[]): { at: number } | { problem: string } {
  let at = 0;
  for (const [i, p] of pieces.entries()) {
    if ('exact' in p) {
      const got = out.subarray(at, at + p.exact.length);
      if (!got.equals(p.exact)) return { problem: `handshake piece ${i}: expected ${p.exact.toString('hex')}, got ${got.toString('hex')}` };
      at += p.exact.length;
    } else {
      if (out.length < at + 20) return { problem: `handshake piece ${i}: missing error reply` };
      const magic = out.readBigUInt64BE(at);
      const option = out.readUInt32BE(at + 8);
      const type = out.readUInt32BE(at + 12);
      const len = out.readUInt32BE(at + 16);
      if (magic !== OPT_REPLY_MAGIC || option !== p.errorReply.option >>> 0 || type !== p.errorReply.type) {
        return { problem: `handshake piece ${i}: expected error reply ${JSON.stringify(p.errorReply)}, got option ${option} type 0x${type.toString(16)}` };
      }
      at += 20 + len;
    }
  }
  return { at };
}

export interface ExpectedReply {
  error: number;
  /** READ data when the reply is OK. */
  data: Buffer | null;
}

export type ExportOp = { op: 'read' | 'trim' | 'zeroes'; offset: number; length: number; fua: boolean } | { op: 'write'; offset: number; length: number; fua: boolean; data: Buffer } | { op: 'flush' };

/**
 * What the protocol says a server answers to each request, applied in order to a model
 * of the export's bytes (`memory`, changed in place), and which calls reach the export.
 * TRIM is advisory: the model leaves the bytes alone.
 */
export function expectedTransmission(requests: ResolvedRequest[], shape: ExportShape, memory: Buffer): { replies: Map<bigint, ExpectedReply>; ops: ExportOp[]; refused: number } {
  const replies = new Map<bigint, ExpectedReply>();
  const ops: ExportOp[] = [];
  let refused = 0;
  const size = BigInt(shape.size);
  for (const r of requests) {
    const end = r.offset + BigInt(r.length);
    const fua = (r.flags & CMD_FLAG_FUA) !== 0;
    let error: number;
    if (r.type === CMD.WRITE && r.length > shape.maxPayload) {
      // Too large to accept: its payload is read and thrown away, then EOVERFLOW.
      error = ERRNO.EOVERFLOW;
    } else if ((r.flags & ~(CMD_FLAG_FUA | CMD_FLAG_NO_HOLE)) !== 0) {
      error = ERRNO.EINVAL;
    } else {
      switch (r.type) {
        case CMD.READ:
          error = r.length > shape.maxPayload ? ERRNO.EOVERFLOW : end > size ? ERRNO.EINVAL : ERRNO.OK;
          break;
        case CMD.WRITE:
        case CMD.WRITE_ZEROES:
          error = shape.readOnly ? ERRNO.EPERM : end > size ? ERRNO.ENOSPC : ERRNO.OK;
          break;
        case CMD.TRIM:
          error = shape.readOnly ? ERRNO.EPERM : end > size ? ERRNO.EINVAL : ERRNO.OK;
          break;
        case CMD.FLUSH:
          error = ERRNO.OK;
          break;
        default:
          error = ERRNO.EINVAL;
      }
    }
    if (error !== ERRNO.OK) {
      refused++;
      replies.set(r.cookie, { error, data: null });
      continue;
    }
    const offset = Number(r.offset);
    switch (r.type) {
      case CMD.READ:
        ops.push({ op: 'read', offset, length: r.length, fua: false });
        replies.set(r.cookie, { error, data: Buffer.from(memory.subarray(offset, offset + r.length)) });
        continue;
      case CMD.WRITE:
        ops.push({ op: 'write', offset, length: r.length, fua, data: r.data! });
        r.data!.copy(memory, offset);
        break;
      case CMD.WRITE_ZEROES:
        ops.push({ op: 'zeroes', offset, length: r.length, fua });
        memory.fill(0, offset, offset + r.length);
        break;
      case CMD.TRIM:
        ops.push({ op: 'trim', offset, length: r.length, fua });
        break;
      case CMD.FLUSH:
        ops.push({ op: 'flush' });
        break;
    }
    replies.set(r.cookie, { error, data: null });
  }
  return { replies, ops, refused };
}

/**
 * Parses simple replies; an OK reply to a READ carries its `length` bytes. Returns the
 * replies by cookie, or a problem (bad magic, a duplicate or unknown cookie).
 */
export function parseReplies(out: Buffer, requestOf: (cookie: bigint) => { type: number; length: number } | undefined): { replies: Map<bigint, ExpectedReply>; rest: number } | { problem: string } {
  const replies = new Map<bigint, ExpectedReply>();
  let at = 0;
  while (at + 16 <= out.length) {
    if (out.readUInt32BE(at) !== SIMPLE_REPLY_MAGIC) return { problem: `bad reply magic at ${at}: ${out.subarray(at, at + 16).toString('hex')}` };
    const error = out.readUInt32BE(at + 4);
    const cookie = out.readBigUInt64BE(at + 8);
    const req = requestOf(cookie);
    if (req === undefined) return { problem: `reply for a cookie no request carried: ${cookie}` };
    if (replies.has(cookie)) return { problem: `second reply for cookie ${cookie}` };
    const withData = error === 0 && req.type === CMD.READ;
    const dataLen = withData ? req.length : 0;
    if (at + 16 + dataLen > out.length) return { problem: `reply for ${cookie} cut short` };
    replies.set(cookie, { error, data: withData ? Buffer.from(out.subarray(at + 16, at + 16 + dataLen)) : null });
    at += 16 + dataLen;
  }
  return { replies, rest: out.length - at };
}

// ---- breaking a session ----

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'duplicate'; at: number; length: number }
  | { kind: 'truncate'; at: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.nat(255) }),
  // Lengths and counts the parser must bound.
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(0, 1, 0xffffffff, 0x80000000, 65536, 65537, MAX_DRAIN_BYTES, MAX_DRAIN_BYTES + 1, REQUEST_MAGIC), fc.nat()) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

export function mutate(bytes: Buffer, mutations: Mutation[]): Buffer {
  let b = Buffer.from(bytes);
  for (const m of mutations) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    switch (m.kind) {
      case 'flip':
        b[at] = b[at]! ^ (1 << m.bit);
        break;
      case 'set':
        b[at] = m.byte;
        break;
      case 'u32':
        if (at + 4 <= b.length) b.writeUInt32BE(m.value >>> 0, at);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.length)]);
        break;
      case 'duplicate':
        b = Buffer.concat([b.subarray(0, at + m.length), b.subarray(at, at + m.length), b.subarray(at + m.length)]);
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
    }
  }
  return b;
}

/** Splits `bytes` into chunks of the given sizes, used in turn. */
export function chunked(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  for (let at = 0; at < bytes.length; i++) {
    const n = Math.max(1, sizes.length === 0 ? bytes.length : sizes[i % sizes.length]!);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

/** Chunk sizes: byte by byte, small, or large pieces. */
export const chunkSizesArb: fc.Arbitrary<number[]> = fc.oneof(
  fc.constant([] as number[]),
  fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 8 }),
  fc.array(fc.integer({ min: 1, max: 70000 }), { minLength: 1, maxLength: 4 }),
);

/**
 * Whether `data`, written at `offset`, came from a WRITE request in `stream`: a request
 * header with the magic, the WRITE type, that offset and length, followed by exactly
 * those bytes. Anything else reaching the export was made up by the parser.
 */
export function writeIsInStream(stream: Buffer, offset: number, data: Buffer): boolean {
  for (let p = stream.indexOf(u32(REQUEST_MAGIC)); p !== -1; p = stream.indexOf(u32(REQUEST_MAGIC), p + 1)) {
    if (p + 28 + data.length > stream.length) continue;
    if (stream.readUInt16BE(p + 6) !== CMD.WRITE) continue;
    if (stream.readBigUInt64BE(p + 16) !== BigInt(offset) || stream.readUInt32BE(p + 24) !== data.length) continue;
    if (stream.subarray(p + 28, p + 28 + data.length).equals(data)) return true;
  }
  return false;
}
