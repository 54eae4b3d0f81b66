import { credentials, ServerCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { InvalidArgumentError } from '../errors.js';
import { sanIdentities, type IdentityRole } from '../identity/identity.js';
import { isLoopbackHost, parseHostPort } from '../net/host-port.js';

export interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/** Reads TLS files; all three or none (`flag` names them in the error: --tls, --peer). */
export function tlsFilesFrom(opts: { tlsCert?: string | undefined; tlsKey?: string | undefined; tlsCa?: string | undefined }, flag = '--tls'): TlsFiles | undefined {
  const given = [opts.tlsCert, opts.tlsKey, opts.tlsCa].filter((v) => v !== undefined && v !== '');
  if (given.length === 0) return undefined;
  if (given.length !== 3) throw new InvalidArgumentError(`${flag}-cert, ${flag}-key and ${flag}-ca go together`);
  return { cert: opts.tlsCert!, key: opts.tlsKey!, ca: opts.tlsCa! };
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new InvalidArgumentError(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Credentials for a listener. With TLS files: mutual TLS, client certificates required.
 * Without: plaintext, allowed only on a loopback address — an API that can create and
 * delete pairs (or write blocks) must never be open to the network unauthenticated.
 */
export function serverCredentials(listen: string, what: string, tls: TlsFiles | undefined): ServerCredentials {
  const { host } = parseHostPort(listen, what);
  if (tls === undefined) {
    if (!isLoopbackHost(host)) throw new InvalidArgumentError(`${what} ${listen} is not loopback: give --tls-cert, --tls-key and --tls-ca (mutual TLS)`);
    return ServerCredentials.createInsecure();
  }
  return ServerCredentials.createSsl(read(tls.ca, 'TLS CA'), [{ cert_chain: read(tls.cert, 'TLS certificate'), private_key: read(tls.key, 'TLS key') }], true);
}

/** A PEM file's text (a CA bundle), or an InvalidArgumentError naming it. */
export function readPem(path: string, what: string): string {
  return read(path, what).toString('utf8');
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

export function readTlsMaterial(tls: TlsFiles): TlsMaterial {
  return { cert: read(tls.cert, 'TLS certificate'), key: read(tls.key, 'TLS key'), ca: read(tls.ca, 'TLS CA') };
}

/**
 * Which blockmirror identity the server must present, besides its CA and name: its role
 * (a peer link dials only a `peer`, the operator only a `sidecar-control`), or exactly
 * one identity (a pair pinned to its remote site's).
 */
export interface ExpectedServer {
  role: IdentityRole;
  uri?: string;
}

/**
 * Client credentials: mutual TLS from files or material; without, plaintext to loopback
 * only. A Unix socket (`unix:///path`) is local: its directory's permissions guard it,
 * and TLS, if given, is not used for it.
 */
export function channelCredentials(target: string, tls: TlsFiles | TlsMaterial | undefined, expect?: ExpectedServer): ChannelCredentials {
  if (target.startsWith('unix:')) return credentials.createInsecure();
  if (tls === undefined) {
    const { host } = parseHostPort(target, 'address');
    if (!isLoopbackHost(host)) throw new InvalidArgumentError(`${target} is not loopback: give --tls-cert, --tls-key and --tls-ca (mutual TLS)`);
    return credentials.createInsecure();
  }
  const m = isTlsMaterial(tls) ? tls : readTlsMaterial(tls);
  if (expect === undefined) return credentials.createSsl(m.ca, m.key, m.cert);
  return credentials.createSsl(m.ca, m.key, m.cert, { checkServerIdentity: (host, cert) => checkServerIdentity(host, cert) ?? serverIdentityError(cert, expect) });
}

/** Undefined when the server's certificate carries the identity expected of it. */
export function serverIdentityError(cert: PeerCertificate, expect: ExpectedServer): Error | undefined {
  const ids = sanIdentities(cert.subjectaltname);
  const id = ids.length === 1 ? ids[0]! : undefined;
  const ok = id !== undefined && (expect.uri !== undefined ? id.uri === expect.uri : id.role === expect.role);
  if (ok) return undefined;
  const want = expect.uri ?? `a spiffe://blockmirror/<site>/${expect.role} identity`;
  const has = ids.length > 0 ? ids.map((id) => id.uri).join(', ') : 'no blockmirror identity';
  return Object.assign(new Error(`the server's certificate is not ${want}: it carries ${has}`), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
}

function isTlsMaterial(tls: TlsFiles | TlsMaterial): tls is TlsMaterial {
  return Buffer.isBuffer(tls.cert);
}
