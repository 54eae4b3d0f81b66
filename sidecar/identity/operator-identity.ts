import { InvalidArgumentError } from '../errors.js';
import { identityUri, pemIdentities, requireIdentity } from './identity.js';

/**
 * The one client identity the control port admits over TLS: `given`, or the operator of
 * the site the sidecar's own control certificate names (spiffe://blockmirror/<site>/…).
 * A certificate naming no site and no `given` is refused: without an identity to pin,
 * the port would admit anything its CA signed.
 */
export function operatorIdentityFor(controlCertPem: string | Buffer, given?: string): string {
  if (given !== undefined && given !== '') {
    const id = requireIdentity(given, '--operator-identity');
    if (id.role !== 'operator') throw new InvalidArgumentError(`--operator-identity ${given} is not an operator identity (spiffe://blockmirror/<site>/operator)`);
    return id.uri;
  }
  const own = pemIdentities(controlCertPem);
  const site = own[0]?.site;
  if (site === undefined) throw new InvalidArgumentError('--tls-cert carries no spiffe://blockmirror/<site>/... URI subjectAltName: give --operator-identity (the one client identity the control port admits)');
  return identityUri(site, 'operator');
}
