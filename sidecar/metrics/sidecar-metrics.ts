import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { PairStatusView } from '../pair/pair.js';
import { PAIR_STATES } from '../pair/pair-state.js';

/**
 * Prometheus metrics of a sidecar. Per-pair figures are read from the pairs' status at
 * scrape time, so the data path only bumps plain counters.
 */
/** Facts about the node, fixed for the process's life. */
export interface NodeFacts {
  /** The node can put volumes behind the tap (see splice-capability). */
  spliceCapable: boolean;
}

export class SidecarMetrics {
  readonly registry = new Registry();
  readonly #protocolErrors: Counter<'pair' | 'reason'>;
  readonly #peerRefused: Counter<'reason'>;
  readonly #peerConnections: Counter;
  readonly #controlRefused: Counter;
  readonly #peerRedirects: Counter;

  constructor(pairs: () => PairStatusView[], node: NodeFacts) {
    collectDefaultMetrics({ register: this.registry, prefix: 'blockmirror_sidecar_' });
    const reg = [this.registry];
    new Gauge({ name: 'blockmirror_node_splice_capable', help: '1 when this node can put volumes behind the tap (device-mapper, dm-multipath, dm-era, nbd, the NBD helper), else 0; the sidecar logs why at start.', registers: reg }).set(
      node.spliceCapable ? 1 : 0,
    );
    const counter = (name: string, help: string, pick: (p: PairStatusView) => number): void => {
      new Counter({
        name,
        help,
        labelNames: ['pair'],
        registers: reg,
        collect() {
          this.reset();
          for (const p of pairs()) this.labels(p.name).inc(pick(p));
        },
      });
    };
    const gauge = (name: string, help: string, pick: (p: PairStatusView) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['pair'],
        registers: reg,
        collect() {
          this.reset();
          for (const p of pairs()) this.labels(p.name).set(pick(p));
        },
      });
    };
    counter('blockmirror_written_bytes_total', 'Bytes written through the NBD export.', (p) => p.bytesWritten);
    counter('blockmirror_read_bytes_total', 'Bytes read through the NBD export.', (p) => p.bytesRead);
    counter('blockmirror_write_ops_total', 'Write requests (WRITE, WRITE_ZEROES) served.', (p) => p.writeOps);
    counter('blockmirror_read_ops_total', 'Read requests served.', (p) => p.readOps);
    gauge('blockmirror_dirty_bytes', 'Bytes in blocks marked dirty (not confirmed by the peer).', (p) => p.outOfSyncBytes);
    gauge('blockmirror_out_of_sync_bytes', 'Bytes the secondary has not confirmed.', (p) => p.outOfSyncBytes);
    gauge('blockmirror_volume_bytes', 'Size of the volume.', (p) => p.volumeBytes);
    gauge('blockmirror_nbd_connections', 'Open NBD client connections.', (p) => p.nbdConnections);
    // Async mode (zero for other pairs).
    gauge('blockmirror_rpo_seconds', 'Async: now minus the primary time of the last consistency group applied on the secondary (0: nothing pending).', (p) => p.rpoSeconds);
    gauge('blockmirror_last_consistency_point_timestamp_seconds', 'Async: primary time of the last consistency group applied on the secondary.', (p) => p.lastConsistencyPointTimeMs / 1000);
    counter('blockmirror_consistency_groups_formed_total', 'Async: consistency groups applied on the secondary.', (p) => p.groupsFormed);
    counter('blockmirror_consistency_groups_failed_total', 'Async: consistency groups that failed and were retried.', (p) => p.groupsFailed);
    counter('blockmirror_consistency_groups_deferred_total', 'Async: group starts put off while the application wrote faster than the link carried.', (p) => p.groupsDeferred);
    gauge('blockmirror_coordination_hold_p99_seconds', 'Async: 99th percentile of the write-acknowledgement hold at a group cut (last 1024 groups).', (p) => p.coordinationHoldP99Ms / 1000);
    new Gauge({
      name: 'blockmirror_pair_state',
      help: '1 for the state the pair is in, 0 for the others.',
      labelNames: ['pair', 'state'],
      registers: reg,
      collect() {
        this.reset();
        for (const p of pairs()) for (const s of PAIR_STATES) this.labels(p.name, s).set(p.state === s ? 1 : 0);
      },
    });
    counter('blockmirror_replicated_bytes_total', 'Bytes the secondary acknowledged (primary) or applied (secondary).', (p) => p.bytesReplicated);
    counter('blockmirror_peer_wire_bytes_total', 'Block payload bytes sent to the peer (zero runs carry none).', (p) => p.bytesOnWire);
    counter('blockmirror_retries_total', 'Reconnection attempts to the peer.', (p) => p.retries);
    counter('blockmirror_replication_errors_total', 'Frames, barriers or groups the secondary could not apply (disk full, I/O error); on the secondary, what it refused.', (p) => p.replicationErrors);
    gauge('blockmirror_resync_progress_percent', 'Progress of the current initial copy or resync.', (p) => p.resyncProgressPercent);
    gauge('blockmirror_last_in_sync_timestamp_seconds', 'When the pair was last fully in sync (0: never).', (p) => p.lastInSyncTimeMs / 1000);
    this.#peerRefused = new Counter({
      name: 'blockmirror_peer_refused_total',
      help: 'Peer connections, handshakes, streams or frames refused (garbage, wrong pair, mismatch, bad crc, no certificate).',
      labelNames: ['reason'],
      registers: reg,
    });
    this.#controlRefused = new Counter({
      name: 'blockmirror_control_refused_total',
      help: "Control API calls refused for the caller's certificate identity (only the operator is admitted over TLS).",
      registers: reg,
    });
    this.#peerConnections = new Counter({
      name: 'blockmirror_peer_connections_total',
      help: 'TCP connections accepted on the peer port (a session uses one; refused ones count here too).',
      registers: reg,
    });
    this.#peerRedirects = new Counter({
      name: 'blockmirror_peer_redirects_total',
      help: "Handshakes for a pair another sidecar of this site holds, answered with that sidecar's peer address.",
      registers: reg,
    });
    this.#protocolErrors = new Counter({
      name: 'blockmirror_nbd_protocol_errors_total',
      help: 'Malformed or refused NBD requests and handshakes.',
      labelNames: ['pair', 'reason'],
      registers: reg,
    });
  }

  peerRefused(reason: string): void {
    this.#peerRefused.labels(reason).inc();
  }

  controlRefused(): void {
    this.#controlRefused.inc();
  }

  peerConnection(): void {
    this.#peerConnections.inc();
  }

  peerRedirect(): void {
    this.#peerRedirects.inc();
  }

  protocolError(pair: string, reason: string): void {
    // Reasons carry numbers (sizes, errnos); keep the label's cardinality bounded.
    this.#protocolErrors.labels(pair, reason.replace(/[0-9]+/g, 'N').slice(0, 60)).inc();
  }
}
