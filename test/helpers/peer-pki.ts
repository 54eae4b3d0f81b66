import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOk } from './run-cli.js';
import { makeTestPki, type Identity, type TestPki } from './test-pki.js';

export interface PeerPki extends TestPki {
  /**
   * A sidecar's identity: it serves (control and peer ports) and dials its peer with the
   * same certificate, so it carries both serverAuth and clientAuth (makeTestPki's server
   * and client certificates carry one each).
   */
  peer: Identity;
}

/**
 * makeTestPki's CA and identities, plus a dual-use sidecar certificate from the same CA
 * for `san` (default 127.0.0.1 and localhost).
 */
export async function makePeerPki(dir: string, prefix: string, san = 'IP:127.0.0.1,DNS:localhost'): Promise<PeerPki> {
  const pki = await makeTestPki(dir, prefix);
  const p = (f: string): string => join(dir, `${prefix}-${f}`);
  const opts = { cwd: dir, timeoutMs: 30_000 };
  await runOk('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${prefix} sidecar`, '-keyout', p('peer.key'), '-out', p('peer.csr')], opts);
  writeFileSync(p('peer.ext'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  await runOk('openssl', ['x509', '-req', '-in', p('peer.csr'), '-CA', pki.ca, '-CAkey', p('ca.key'), '-CAcreateserial', '-days', '2', '-out', p('peer.crt'), '-extfile', p('peer.ext')], opts);
  return { ...pki, peer: { cert: p('peer.crt'), key: p('peer.key') } };
}
