import { issueCertificate, makeTestPki, type Identity, type TestPki } from './test-pki.js';

export interface PeerPki extends TestPki {
  /**
   * A sidecar's peer link identity, spiffe://blockmirror/<prefix>/peer: it serves the peer
   * port and dials its peer with the same certificate, so it carries both serverAuth and
   * clientAuth. (Tests also serve the control port with it: the control port pins the
   * operator of the site its own certificate names.)
   */
  peer: Identity;
}

/**
 * makeTestPki's CA and identities, plus a dual-use peer certificate from the same CA
 * for `san` (default 127.0.0.1 and localhost).
 */
export async function makePeerPki(dir: string, prefix: string, san = 'IP:127.0.0.1,DNS:localhost'): Promise<PeerPki> {
  const pki = await makeTestPki(dir, prefix);
  const peer = await issueCertificate(dir, pki, { name: `${prefix}-peer`, ext: `subjectAltName=${san},URI:spiffe://blockmirror/${prefix}/peer\nextendedKeyUsage=serverAuth,clientAuth\n` });
  return { ...pki, peer };
}
