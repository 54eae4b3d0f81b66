import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOk } from './run-cli.js';

export interface Identity {
  cert: string;
  key: string;
}

export interface TestPki {
  ca: string;
  /** The CA's key: issueCertificate signs more certificates with it. */
  caKey: string;
  /** The sidecar's control server: 127.0.0.1/localhost, spiffe://blockmirror/<prefix>/sidecar-control. */
  server: Identity;
  /** The operator's client identity, spiffe://blockmirror/<prefix>/operator. */
  client: Identity;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await runOk('openssl', args, { cwd, timeoutMs: 30_000 });
}

/**
 * A certificate signed by `pki`'s CA, written as DIR/NAME.{crt,key}; `ext` holds openssl
 * extension lines (subjectAltName, extendedKeyUsage).
 */
export async function issueCertificate(dir: string, pki: Pick<TestPki, 'ca' | 'caKey'>, cert: { name: string; ext: string }): Promise<Identity> {
  const { name, ext } = cert;
  const p = (f: string): string => join(dir, `${name}.${f}`);
  await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-keyout', p('key'), '-out', p('csr')], dir);
  writeFileSync(p('ext'), ext);
  await openssl(['x509', '-req', '-in', p('csr'), '-CA', pki.ca, '-CAkey', pki.caKey, '-CAcreateserial', '-days', '2', '-out', p('crt'), '-extfile', p('ext')], dir);
  return { cert: p('crt'), key: p('key') };
}

/**
 * A throwaway CA for site `prefix`, with the chart's identities (URI subjectAltNames
 * spiffe://blockmirror/<prefix>/<role>): a control server certificate for
 * 127.0.0.1/localhost and the operator's client certificate.
 */
export async function makeTestPki(dir: string, prefix = 'ca'): Promise<TestPki> {
  const p = (f: string): string => join(dir, `${prefix}-${f}`);
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${prefix} test CA`, '-keyout', p('ca.key'), '-out', p('ca.crt')], dir);
  const ca = { ca: p('ca.crt'), caKey: p('ca.key') };
  const server = await issueCertificate(dir, ca, { name: `${prefix}-server`, ext: `subjectAltName=IP:127.0.0.1,DNS:localhost,URI:spiffe://blockmirror/${prefix}/sidecar-control\nextendedKeyUsage=serverAuth\n` });
  const client = await issueCertificate(dir, ca, { name: `${prefix}-client`, ext: `subjectAltName=URI:spiffe://blockmirror/${prefix}/operator\nextendedKeyUsage=clientAuth\n` });
  return { ...ca, server, client };
}
