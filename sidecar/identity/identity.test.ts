import { describe, expect, it } from '@jest/globals';
import { identityUri, parseIdentity, requirePeerIdentity, sanIdentities } from './identity.js';
import { operatorIdentityFor } from './operator-identity.js';

describe('blockmirror identities', () => {
  it('parses spiffe://blockmirror/<site>/<role> and nothing else', () => {
    expect(parseIdentity('spiffe://blockmirror/site-a/peer')).toEqual({ uri: 'spiffe://blockmirror/site-a/peer', site: 'site-a', role: 'peer' });
    for (const bad of ['spiffe://blockmirror/site-a/admin', 'spiffe://other/site-a/peer', 'spiffe://blockmirror/Site/peer', 'spiffe://blockmirror//peer', 'spiffe://blockmirror/a/b/peer', 'spiffe://blockmirror/site-a/peer/']) {
      expect(parseIdentity(bad)).toBeUndefined();
    }
    expect(identityUri('dc1', 'operator')).toBe('spiffe://blockmirror/dc1/operator');
    expect(() => identityUri('DC 1', 'operator')).toThrow(/not a DNS label/);
    expect(() => requirePeerIdentity('spiffe://blockmirror/dc1/operator', 'remote identity')).toThrow(/is not a peer identity/);
  });

  it("reads them from Node's subjectAltName text, quoted values too", () => {
    const san = 'DNS:x.svc, IP Address:127.0.0.1, URI:spiffe://blockmirror/a/peer, URI:"spiffe://blockmirror/b/operator", URI:https://example.com/a,b';
    expect(sanIdentities(san).map((i) => i.uri)).toEqual(['spiffe://blockmirror/a/peer', 'spiffe://blockmirror/b/operator']);
    expect(sanIdentities(undefined)).toEqual([]);
    // A comma inside a quoted value does not split it into a forged second entry.
    expect(sanIdentities('URI:"https://x/, URI:spiffe://blockmirror/a/operator"')).toEqual([]);
  });

  it("pins the operator of the control certificate's site, or the one given", () => {
    expect(() => operatorIdentityFor('not a certificate')).toThrow();
    expect(operatorIdentityFor('ignored', 'spiffe://blockmirror/x/operator')).toBe('spiffe://blockmirror/x/operator');
    expect(() => operatorIdentityFor('ignored', 'spiffe://blockmirror/x/peer')).toThrow(/not an operator identity/);
  });
});
