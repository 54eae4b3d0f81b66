import { join } from 'node:path';
import { runOk } from './run-cli.js';
import { issueCertificate, type Identity } from './test-pki.js';

export interface SiteCa {
  ca: string;
  caKey: string;
}

/** A site's three certificates, shaped as the chart's cert-manager Certificates issue them. */
export interface SiteIdentities extends SiteCa {
  site: string;
  /** spiffe://blockmirror/<site>/operator, clientAuth: the only caller the control port admits over TLS. */
  operator: Identity;
  /** spiffe://blockmirror/<site>/sidecar-control, serverAuth: every sidecar's control port. */
  control: Identity;
  /** spiffe://blockmirror/<site>/peer, serverAuth and clientAuth: the peer link, both ends. */
  peer: Identity;
}

/** A throwaway CA (a site's issuer), `name` naming its files in `dir`. */
export async function makeCa(dir: string, name: string): Promise<SiteCa> {
  const ca = join(dir, `${name}-ca.crt`);
  const caKey = join(dir, `${name}-ca.key`);
  await runOk('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${name} CA`, '-keyout', caKey, '-out', ca], { cwd: dir, timeoutMs: 30_000 });
  return { ca, caKey };
}

/**
 * The chart's identities for `site`, signed by `ca` (sites may share one CA, or each have
 * its own). The server certificates also carry 127.0.0.1, where the tests dial them.
 */
export async function makeSiteIdentities(dir: string, site: string, opts: { ca: SiteCa; dnsName?: string }): Promise<SiteIdentities> {
  const { ca, dnsName = 'blockmirror-sidecar-peer.blockmirror-system.svc' } = opts;
  const uri = (role: string): string => `URI:spiffe://blockmirror/${site}/${role}`;
  // One after another: openssl keeps the CA's serial in one file.
  const operator = await issueCertificate(dir, ca, { name: `${site}-operator`, ext: `subjectAltName=${uri('operator')}\nextendedKeyUsage=clientAuth\n` });
  const control = await issueCertificate(dir, ca, { name: `${site}-control`, ext: `subjectAltName=DNS:${dnsName},IP:127.0.0.1,${uri('sidecar-control')}\nextendedKeyUsage=serverAuth\n` });
  const peer = await issueCertificate(dir, ca, { name: `${site}-peer`, ext: `subjectAltName=DNS:${dnsName},IP:127.0.0.1,${uri('peer')}\nextendedKeyUsage=serverAuth,clientAuth\n` });
  return { ...ca, site, operator, control, peer };
}

/** The sidecar flags the chart passes for a site's identities (control and peer ports). */
export function sidecarIdentityArgs(s: SiteIdentities): string[] {
  return ['--tls-cert', s.control.cert, '--tls-key', s.control.key, '--tls-ca', s.ca, '--peer-cert', s.peer.cert, '--peer-key', s.peer.key, '--peer-ca', s.ca];
}
