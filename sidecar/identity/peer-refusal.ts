import type { AuthContext } from './auth-context.js';
import { onePeerIdentity, sanIdentities } from './identity.js';

/**
 * Why a peer-port caller may not act on a pair, or undefined when it may. Without TLS
 * (a loopback listener: tests, one host) there is no identity to check. With TLS the
 * caller must present a peer identity, and exactly `expected` when the pair names one:
 * a secondary that never synced must not take any primary the CA vouches for.
 */
export function peerRefusal(auth: AuthContext, pair: { pairId: string; expected: string | undefined }): string | undefined {
  const { pairId, expected } = pair;
  if (auth.transportSecurityType !== 'ssl') return undefined;
  const san = auth.sslPeerCertificate?.subjectaltname;
  const peer = onePeerIdentity(san);
  if (peer === undefined) {
    const ids = sanIdentities(san);
    const has = ids.length > 0 ? ids.map((id) => id.uri).join(', ') : 'no blockmirror identity';
    return `the peer port admits only certificates carrying one peer identity (spiffe://blockmirror/<site>/peer); the caller has ${has}`;
  }
  if (expected !== undefined && peer.uri !== expected) return `pair ${JSON.stringify(pairId)} accepts only ${expected}; the caller is ${peer.uri}`;
  return undefined;
}
