import { describe, expect, it } from '@jest/globals';
import type { PeerCertificate } from 'node:tls';
import type { AuthContext } from './auth-context.js';
import { controlRefusal } from './control-authorizer.js';
import { peerRefusal } from './peer-refusal.js';

const tls = (san: string): AuthContext => ({ transportSecurityType: 'ssl', sslPeerCertificate: { subjectaltname: san, subject: { CN: 'x' } } as unknown as PeerCertificate });

describe('authorization by identity', () => {
  it('the control API: the pinned operator over TLS, anyone local', () => {
    const op = 'spiffe://blockmirror/a/operator';
    expect(controlRefusal({}, op)).toBeUndefined();
    expect(controlRefusal(tls(`URI:${op}`), op)).toBeUndefined();
    expect(controlRefusal(tls('URI:spiffe://blockmirror/b/peer'), op)).toBe(
      'the control API admits only the operator (spiffe://blockmirror/a/operator) and local callers on the control socket; the caller is spiffe://blockmirror/b/peer',
    );
    expect(controlRefusal(tls('URI:spiffe://blockmirror/b/operator'), op)).toMatch(/the caller is spiffe:\/\/blockmirror\/b\/operator$/);
    expect(controlRefusal(tls('DNS:localhost'), op)).toMatch(/a certificate without a blockmirror identity/);
    // One certificate for every role is what the chart used to issue: refused as a skeleton key.
    expect(controlRefusal(tls(`URI:${op}, URI:spiffe://blockmirror/a/peer`), op)).toMatch(/\(a certificate must carry one identity\)$/);
  });

  it("the peer port: a peer identity, the pair's own when it names one", () => {
    expect(peerRefusal({}, { pairId: 'db', expected: 'spiffe://blockmirror/a/peer' })).toBeUndefined();
    expect(peerRefusal(tls('URI:spiffe://blockmirror/a/peer'), { pairId: 'db', expected: 'spiffe://blockmirror/a/peer' })).toBeUndefined();
    expect(peerRefusal(tls('URI:spiffe://blockmirror/c/peer'), { pairId: 'db', expected: undefined })).toBeUndefined();
    expect(peerRefusal(tls('URI:spiffe://blockmirror/c/peer'), { pairId: 'db', expected: 'spiffe://blockmirror/a/peer' })).toBe('pair "db" accepts only spiffe://blockmirror/a/peer; the caller is spiffe://blockmirror/c/peer');
    expect(peerRefusal(tls('URI:spiffe://blockmirror/a/operator'), { pairId: 'db', expected: undefined })).toMatch(/admits only certificates carrying one peer identity/);
    expect(peerRefusal(tls('URI:spiffe://blockmirror/a/peer, URI:spiffe://blockmirror/a/operator'), { pairId: 'db', expected: undefined })).toMatch(/admits only certificates carrying one peer identity/);
  });
});
