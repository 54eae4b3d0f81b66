import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import { pairStateFromProto } from '../pair/pair-state.js';

export interface PairJson {
  name: string;
  role: 'primary' | 'secondary';
  mode: 'sync' | 'async';
  state: string;
  volumePath: string;
  volumeBytes: number;
  blockSize: number;
  outOfSyncBytes: number;
  dirtyBlocks: number;
  resyncProgressPercent: number;
  lastInSyncTime: string | null;
  retries: number;
  lastError: string;
  peer: string;
  nbdAddress: string;
  nbdSocket: string;
  nbdConnections: number;
  bytesWritten: number;
  bytesRead: number;
  writeOps: number;
  readOps: number;
  bytesOnWire: number;
  bytesReplicated: number;
  consistencyGroup: string;
  lastConsistencyPointTime: string | null;
  rpoSeconds: number;
  groupsFormed: number;
  groupsFailed: number;
  groupsDeferred: number;
  replicationErrors: number;
  coordinationHoldP50Ms: number;
  coordinationHoldP99Ms: number;
  coordinationHoldMaxMs: number;
}

/** The stable JSON shape of `pair status -o json`. */
export function pairToJson(p: Pair__Output): PairJson {
  const s = p.status;
  return {
    name: p.spec?.name ?? '',
    role: p.spec?.role === 'ROLE_SECONDARY' ? 'secondary' : 'primary',
    mode: p.spec?.mode === 'MODE_ASYNC' ? 'async' : 'sync',
    state: (s && pairStateFromProto(s.state)) ?? 'Unknown',
    volumePath: s?.volumePath ?? p.spec?.volumePath ?? '',
    volumeBytes: s?.volumeBytes ?? 0,
    blockSize: p.spec?.blockSize ?? 0,
    outOfSyncBytes: s?.outOfSyncBytes ?? 0,
    dirtyBlocks: s?.dirtyBlocks ?? 0,
    resyncProgressPercent: s?.resyncProgressPercent ?? 0,
    lastInSyncTime: s?.lastInSyncTimeMs ? new Date(s.lastInSyncTimeMs).toISOString() : null,
    retries: s?.retries ?? 0,
    lastError: s?.lastError ?? '',
    peer: p.spec?.peerAddress ?? '',
    nbdAddress: s?.nbdAddress ?? '',
    nbdSocket: s?.nbdSocket ?? '',
    nbdConnections: s?.nbdConnections ?? 0,
    bytesWritten: s?.bytesWritten ?? 0,
    bytesRead: s?.bytesRead ?? 0,
    writeOps: s?.writeOps ?? 0,
    readOps: s?.readOps ?? 0,
    bytesOnWire: s?.bytesOnWire ?? 0,
    bytesReplicated: s?.bytesReplicated ?? 0,
    consistencyGroup: p.spec?.consistencyGroup ?? '',
    lastConsistencyPointTime: s?.lastConsistencyPointTimeMs ? new Date(s.lastConsistencyPointTimeMs).toISOString() : null,
    rpoSeconds: s?.rpoSeconds ?? 0,
    groupsFormed: s?.groupsFormed ?? 0,
    groupsFailed: s?.groupsFailed ?? 0,
    groupsDeferred: s?.groupsDeferred ?? 0,
    replicationErrors: s?.replicationErrors ?? 0,
    coordinationHoldP50Ms: s?.coordinationHoldP50Ms ?? 0,
    coordinationHoldP99Ms: s?.coordinationHoldP99Ms ?? 0,
    coordinationHoldMaxMs: s?.coordinationHoldMaxMs ?? 0,
  };
}

export function formatPair(p: Pair__Output): string {
  const j = pairToJson(p);
  const rows: [string, string][] = [
    ['Name', j.name],
    ['Role', j.role],
    ['Mode', j.mode],
    ['State', j.state],
    ['Volume', `${j.volumePath} (${formatBytes(j.volumeBytes)})`],
    ['Block size', formatBytes(j.blockSize)],
    ['Out of sync', `${formatBytes(j.outOfSyncBytes)} (${j.dirtyBlocks} blocks)`],
    ['Peer', j.peer || '-'],
    ['NBD', [j.nbdAddress, j.nbdSocket].filter((x) => x !== '').join(', ') || '-'],
    ['Written', `${formatBytes(j.bytesWritten)} in ${j.writeOps} ops`],
    ['Read', `${formatBytes(j.bytesRead)} in ${j.readOps} ops`],
  ];
  if (j.peer) rows.push(['Replicated', `${formatBytes(j.bytesReplicated)} (${formatBytes(j.bytesOnWire)} on the wire)`], ['Resync', `${j.resyncProgressPercent}%`], ['Retries', String(j.retries)]);
  if (j.lastInSyncTime) rows.push(['Last in sync', j.lastInSyncTime]);
  if (j.mode === 'async' && j.peer) {
    if (j.consistencyGroup) rows.push(['Consistency group', j.consistencyGroup]);
    rows.push(
      ['Last consistent', j.lastConsistencyPointTime ?? 'never'],
      ['RPO', j.lastConsistencyPointTime ? `${j.rpoSeconds.toFixed(1)} s` : '-'],
      ['Groups', `${j.groupsFormed} formed, ${j.groupsFailed} failed, ${j.groupsDeferred} deferred`],
      ['Coordination hold', `p50 ${j.coordinationHoldP50Ms.toFixed(2)} ms, p99 ${j.coordinationHoldP99Ms.toFixed(2)} ms, max ${j.coordinationHoldMaxMs.toFixed(2)} ms`],
    );
  }
  if (j.replicationErrors > 0) rows.push(['Apply errors', String(j.replicationErrors)]);
  if (j.lastError) rows.push(['Last error', j.lastError]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${(k + ':').padEnd(w + 2)}${v}\n`).join('');
}

export function formatPairList(pairs: Pair__Output[]): string {
  const rows = [['NAME', 'ROLE', 'MODE', 'STATE', 'OUT-OF-SYNC', 'VOLUME']];
  for (const p of pairs.map(pairToJson)) rows.push([p.name, p.role, p.mode, p.state, formatBytes(p.outOfSyncBytes), p.volumePath]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('') + '\n').join('');
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}
