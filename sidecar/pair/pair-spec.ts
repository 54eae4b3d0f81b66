import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';
import { DEFAULT_BLOCK_SIZE, validateBlockSize } from '../bitmap/dirty-tracker.js';
import { parseHostPort, parseLoopbackHostPort } from '../net/host-port.js';
import { requirePeerIdentity } from '../identity/identity.js';

export type PairRole = 'primary' | 'secondary';

/** A pair's own mutual TLS material for its peer link, PEM (from the ReplicationPair's Secret). */
export interface PeerTlsPem {
  cert: string;
  key: string;
  ca: string;
}
export type PairMode = 'sync' | 'async';

/** A replication pair as configured (persisted in the sidecar's state dir). */
export interface PairSpec {
  name: string;
  volumePath: string;
  role: PairRole;
  mode: PairMode;
  /**
   * host:port of the remote sidecar; undefined for a standalone primary. A secondary
   * dials it once promoted (its old primary is then the secondary).
   */
  peer?: string;
  nbdListen?: string;
  nbdSocket?: string;
  blockSize: number;
  paused: boolean;
  /** The pair's name on the remote sidecar (default: the same name). */
  peerPair?: string;
  writeTimeoutMs?: number;
  resyncBytesPerSecond?: number;
  /** Async mode: time between consistency groups (0: back to back). */
  groupIntervalMs?: number;
  /** Async mode: longest hold of write acknowledgements while a group is cut (default 50). */
  maxCoordinationMs?: number;
  /** Async mode: a group draining longer is abandoned and retried (default 30 s). */
  maxDrainMs?: number;
  /** Async mode: pairs with the same name form their groups together. */
  consistencyGroup?: string;
  /** Peer link TLS of this pair; undefined: the sidecar's own certificate and CA. */
  peerTls?: PeerTlsPem;
  /**
   * The remote sidecars' peer identity (spiffe://blockmirror/<site>/peer): the only one
   * whose sessions this pair accepts as a secondary, and that it dials as a primary.
   * Undefined: the sidecar's --remote-peer-identity, else any peer identity.
   */
  remoteIdentity?: string;
}

/** The tunables of a spec as the control API reports them (0 or '': the default). */
export interface PairSettings {
  nbdListen: string;
  nbdSocket: string;
  writeTimeoutMs: number;
  resyncBytesPerSecond: number;
  groupIntervalMs: number;
  maxCoordinationMs: number;
  maxDrainMs: number;
  /** peerTlsFingerprint of the pair's peer TLS material ('' without). */
  peerTlsFingerprint: string;
  /** The pair's own remote peer identity ('' : the sidecar's default). */
  remoteIdentity: string;
}

export function pairSettings(spec: PairSpec): PairSettings {
  return {
    nbdListen: spec.nbdListen ?? '',
    nbdSocket: spec.nbdSocket ?? '',
    writeTimeoutMs: spec.writeTimeoutMs ?? 0,
    resyncBytesPerSecond: spec.resyncBytesPerSecond ?? 0,
    groupIntervalMs: spec.groupIntervalMs ?? 0,
    maxCoordinationMs: spec.maxCoordinationMs ?? 0,
    maxDrainMs: spec.maxDrainMs ?? 0,
    peerTlsFingerprint: spec.peerTls ? peerTlsFingerprint(spec.peerTls) : '',
    remoteIdentity: spec.remoteIdentity ?? '',
  };
}

/** A digest of peer TLS material: tells whether two sides hold the same, never reveals the key. */
export function peerTlsFingerprint(tls: PeerTlsPem): string {
  const h = createHash('sha256');
  for (const part of [tls.cert, tls.key, tls.ca]) h.update(`${Buffer.byteLength(part)}:${part}`);
  return `sha256:${h.digest('hex')}`;
}

function validatePeerTls(input: unknown): PeerTlsPem | undefined {
  if (input === undefined) return undefined;
  const t = input as Partial<Record<keyof PeerTlsPem, unknown>>;
  const pem = (field: keyof PeerTlsPem, what: string): string => {
    const v = t[field];
    if (typeof v !== 'string' || !v.includes('-----BEGIN ')) throw new InvalidArgumentError(`peer TLS ${what} must be PEM text`);
    return v;
  };
  return { cert: pem('cert', 'certificate'), key: pem('key', 'key'), ca: pem('ca', 'CA bundle') };
}

export const DEFAULT_MAX_COORDINATION_MS = 50;
export const DEFAULT_MAX_DRAIN_MS = 30_000;
/** Longest delay a Node timer honours (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export type PairSpecInput = Partial<PairSpec> & { name?: string };

const NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
const STRING_FIELDS = ['name', 'volumePath', 'peer', 'nbdListen', 'nbdSocket', 'peerPair', 'consistencyGroup', 'remoteIdentity'] as const;

/** Checks and normalizes a spec; every problem is an InvalidArgumentError naming it. */
export function validatePairSpec(input: PairSpecInput): PairSpec {
  // pairs.json is read back through here: a field of the wrong type (hand-edited, or
  // damaged) must be refused, not coerced (a regex tests String(5), a path may be {}).
  for (const field of STRING_FIELDS) {
    if (input[field] !== undefined && typeof input[field] !== 'string') throw new InvalidArgumentError(`${field} must be a string, not ${JSON.stringify(input[field])}`);
  }
  if (input.paused !== undefined && typeof input.paused !== 'boolean') throw new InvalidArgumentError(`paused must be true or false, not ${JSON.stringify(input.paused)}`);
  const name = input.name ?? '';
  if (!NAME.test(name)) {
    throw new InvalidArgumentError(`pair name ${JSON.stringify(name)} must be 1-63 lowercase letters, digits, '-' or '.', starting and ending alphanumeric`);
  }
  if (!input.volumePath) throw new InvalidArgumentError('a volume path is required');
  if (input.role !== 'primary' && input.role !== 'secondary') {
    throw new InvalidArgumentError(`role ${JSON.stringify(input.role ?? '')} must be primary or secondary`);
  }
  const mode = input.mode ?? 'sync';
  if (mode !== 'sync' && mode !== 'async') throw new InvalidArgumentError(`mode ${JSON.stringify(mode)} must be sync or async`);
  const blockSize = input.blockSize ?? DEFAULT_BLOCK_SIZE;
  validateBlockSize(blockSize);
  if (input.peer) parseHostPort(input.peer, 'peer address');
  if (input.peerPair !== undefined && input.peerPair !== '' && !NAME.test(input.peerPair)) throw new InvalidArgumentError(`peer pair name ${JSON.stringify(input.peerPair)} is not a valid pair name`);
  // Durations become Node timers, which fire after 1 ms when given more than 2^31 - 1 ms
  // (a write timeout of 30 days would time out every write); the API's uint32 allows more.
  if (input.writeTimeoutMs !== undefined && (!Number.isInteger(input.writeTimeoutMs) || input.writeTimeoutMs < 0 || input.writeTimeoutMs > MAX_TIMER_MS)) {
    throw new InvalidArgumentError(`write timeout must be a whole number of milliseconds, at most ${MAX_TIMER_MS}`);
  }
  const wholeMs = (v: number | undefined, what: string, min: number): void => {
    if (v !== undefined && (!Number.isInteger(v) || v < min || v > MAX_TIMER_MS)) throw new InvalidArgumentError(`${what} must be a whole number of milliseconds, from ${min} to ${MAX_TIMER_MS}`);
  };
  if (input.resyncBytesPerSecond !== undefined && (!Number.isSafeInteger(input.resyncBytesPerSecond) || input.resyncBytesPerSecond < 0)) {
    throw new InvalidArgumentError(`resync rate ${input.resyncBytesPerSecond} must be a whole number of bytes per second (0: no cap)`);
  }
  wholeMs(input.groupIntervalMs, 'group interval', 0);
  wholeMs(input.maxCoordinationMs, 'maximum coordination time', 1);
  wholeMs(input.maxDrainMs, 'maximum drain time', 100);
  if (input.consistencyGroup !== undefined && input.consistencyGroup !== '' && !NAME.test(input.consistencyGroup)) {
    throw new InvalidArgumentError(`consistency group name ${JSON.stringify(input.consistencyGroup)} must be 1-63 lowercase letters, digits, '-' or '.'`);
  }
  if (input.consistencyGroup && mode !== 'async') throw new InvalidArgumentError('a consistency group needs --mode async');
  if (input.nbdListen) parseLoopbackHostPort(input.nbdListen, 'NBD listen address');
  const peerTls = validatePeerTls(input.peerTls);
  if (input.remoteIdentity) requirePeerIdentity(input.remoteIdentity, 'remote identity');
  // A secondary's export settings (a demoted primary's) serve a fenced export: every
  // request refused until it is promoted. A new secondary gets none (PairManager.create).
  return {
    name,
    volumePath: input.volumePath,
    role: input.role,
    mode,
    ...(input.peer ? { peer: input.peer } : {}),
    ...(input.nbdListen ? { nbdListen: input.nbdListen } : {}),
    ...(input.nbdSocket ? { nbdSocket: input.nbdSocket } : {}),
    blockSize,
    paused: input.paused ?? false,
    ...(input.peerPair ? { peerPair: input.peerPair } : {}),
    ...(input.writeTimeoutMs ? { writeTimeoutMs: input.writeTimeoutMs } : {}),
    ...(input.resyncBytesPerSecond ? { resyncBytesPerSecond: input.resyncBytesPerSecond } : {}),
    ...(input.groupIntervalMs ? { groupIntervalMs: input.groupIntervalMs } : {}),
    ...(input.maxCoordinationMs ? { maxCoordinationMs: input.maxCoordinationMs } : {}),
    ...(input.maxDrainMs ? { maxDrainMs: input.maxDrainMs } : {}),
    ...(input.consistencyGroup ? { consistencyGroup: input.consistencyGroup } : {}),
    ...(peerTls ? { peerTls } : {}),
    ...(input.remoteIdentity ? { remoteIdentity: input.remoteIdentity } : {}),
  };
}
