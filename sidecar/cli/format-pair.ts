import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import { formatBytes } from '../control/format-bytes.js';
import { pairToJson } from '../control/pair-json.js';

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
  if (j.remoteIdentity) rows.push(['Remote identity', j.remoteIdentity]);
  if (j.mode === 'async' && j.peer) {
    if (j.consistencyGroup) rows.push(['Consistency group', j.consistencyGroup]);
    rows.push(
      ['Last consistent', j.lastConsistencyPointTime ?? 'never'],
      ['RPO', j.lastConsistencyPointTime ? `${j.rpoSeconds.toFixed(1)} s` : '-'],
      ['Groups', `${j.groupsFormed} formed, ${j.groupsFailed} failed, ${j.groupsDeferred} deferred`],
      ['Coordination hold', `p50 ${j.coordinationHoldP50Ms.toFixed(2)} ms, p99 ${j.coordinationHoldP99Ms.toFixed(2)} ms, max ${j.coordinationHoldMaxMs.toFixed(2)} ms`],
    );
  }
  if (j.generation || j.role === 'secondary') {
    const g = [j.generation || 'none (no complete image)', j.bitmapGeneration ? `bitmap ${j.bitmapGeneration}` : '', j.historyGenerations.length > 0 ? `history ${j.historyGenerations.slice(0, 3).join(' ')}${j.historyGenerations.length > 3 ? ' …' : ''}` : ''];
    rows.push(['Generation', g.filter((x) => x !== '').join(', ')]);
  }
  if (j.peerGeneration) rows.push(['Peer generation', j.peerGeneration]);
  if (j.fenced) rows.push(['Export', 'fenced: writes refused']);
  if (j.role === 'secondary') rows.push(['Promotable', !j.consistent ? 'no: no complete image at a point in time' : j.primaryDemoted ? 'yes: its primary demoted with everything shipped' : 'with --force only: its primary has not demoted']);
  if (j.discardMyData) rows.push(['Discard my data', 'yes: the peer overwrites this side at the next session']);
  if (j.lastPromotionTime) rows.push(['Promoted', `${j.lastPromotionTime} (at the point of ${j.promotedPointTime ?? 'an unknown time'})`]);
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
