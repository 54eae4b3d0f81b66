import { InvalidArgumentError } from '../errors.js';
import { DEFAULT_BLOCK_SIZE, validateBlockSize } from '../bitmap/dirty-tracker.js';
import { parseHostPort, parseLoopbackHostPort } from '../net/host-port.js';

export type PairRole = 'primary' | 'secondary';
export type PairMode = 'sync' | 'async';

/** A replication pair as configured (persisted in the sidecar's state dir). */
export interface PairSpec {
  name: string;
  volumePath: string;
  role: PairRole;
  mode: PairMode;
  /** host:port of the remote sidecar; undefined for a standalone primary. */
  peer?: string;
  nbdListen?: string;
  nbdSocket?: string;
  blockSize: number;
  paused: boolean;
  /** The pair's name on the remote sidecar (default: the same name). */
  peerPair?: string;
  writeTimeoutMs?: number;
  resyncBytesPerSecond?: number;
}

export type PairSpecInput = Partial<PairSpec> & { name?: string };

const NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

/** Checks and normalizes a spec; every problem is an InvalidArgumentError naming it. */
export function validatePairSpec(input: PairSpecInput): PairSpec {
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
  if (input.writeTimeoutMs !== undefined && (!Number.isInteger(input.writeTimeoutMs) || input.writeTimeoutMs < 0)) throw new InvalidArgumentError('write timeout must be a whole number of milliseconds');
  if (input.nbdListen) parseLoopbackHostPort(input.nbdListen, 'NBD listen address');
  if (input.role === 'secondary' && (input.nbdListen || input.nbdSocket)) {
    throw new InvalidArgumentError("a secondary's volume is never exposed over NBD: drop --nbd-listen/--nbd-socket");
  }
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
  };
}
