import type { ServiceError } from '@grpc/grpc-js';
import type { PeerReadyResponse__Output } from '../../../proto/gen/blockmirror/replication/v1/PeerReadyResponse.js';
import { channelCredentials, type TlsFiles, type TlsMaterial } from '../../grpc/grpc-credentials.js';
import { MAX_REDIRECTS } from '../wire/peer-protocol.js';
import { peerServiceClient, type PeerServiceClient } from '../wire/peer-service.js';

export interface AnnounceReadyOptions {
  /** The primary's site: its entry point (host:port), as the secondary's spec names it. */
  address: string;
  /** The primary pair's name on the sidecar called. */
  remotePair: string;
  tls?: TlsFiles | TlsMaterial;
  /** The name the primary's certificate must carry (default: the dialled host). */
  serverName?: string;
  /** The peer identity the primary's sidecar must present. */
  serverIdentity?: string;
  /** Longest the whole announcement may take (default 5 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * A secondary that (re)started tells its primary (PeerReady) that it can take a session:
 * the primary dials now instead of when its reconnect backoff says, up to a second
 * later, during which a sync primary keeps marking its writes out of sync. Follows a
 * site's redirects as the primary's link does. Resolves with the address that answered;
 * rejects as the call does (the primary then finds the secondary by its own backoff).
 */
export async function announceReady(o: AnnounceReadyOptions): Promise<string> {
  const deadline = new Date(Date.now() + (o.timeoutMs ?? 5000));
  let address = o.address;
  for (let hop = 0; ; hop++) {
    // Throws for plaintext off loopback, as every peer channel does.
    const creds = channelCredentials(address, o.tls, { role: 'peer', ...(o.serverIdentity ? { uri: o.serverIdentity } : {}) });
    const client = peerServiceClient(address, creds, {
      // Its own connection: closing it must not touch a session's.
      'grpc.use_local_subchannel_pool': 1,
      ...(o.serverName && o.tls ? { 'grpc.ssl_target_name_override': o.serverName, 'grpc.default_authority': o.serverName } : {}),
    });
    try {
      const res = await peerReady(client, o.remotePair, deadline, o.signal);
      if (res.redirect === '') return address;
      if (hop === MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects (last to ${res.redirect})`);
      address = res.redirect;
    } finally {
      client.close();
    }
  }
}

function peerReady(c: PeerServiceClient, pairId: string, deadline: Date, signal: AbortSignal | undefined): Promise<PeerReadyResponse__Output> {
  return new Promise((resolve, reject) => {
    const call = c.PeerReady({ pairId }, { deadline }, (err: ServiceError | null, res?: PeerReadyResponse__Output) => (err || !res ? reject(err ?? new Error('empty PeerReady answer')) : resolve(res)));
    if (signal?.aborted) call.cancel();
    else signal?.addEventListener('abort', () => call.cancel(), { once: true });
  });
}
