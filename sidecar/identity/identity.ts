import { X509Certificate } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';

/**
 * A blockmirror identity, carried as a URI subjectAltName:
 * `spiffe://blockmirror/<site>/<role>`. The role says which port may admit it: the
 * operator (control port), a sidecar's control server, or a sidecar's peer link.
 */
export type IdentityRole = 'operator' | 'sidecar-control' | 'peer';

export interface Identity {
  uri: string;
  site: string;
  role: IdentityRole;
}

const IDENTITY = /^spiffe:\/\/blockmirror\/([a-z0-9](?:[-a-z0-9.]{0,61}[a-z0-9])?)\/(operator|sidecar-control|peer)$/;

/** The identity a URI names, or undefined when it is not a blockmirror identity. */
export function parseIdentity(uri: string): Identity | undefined {
  const m = IDENTITY.exec(uri);
  if (m === null) return undefined;
  return { uri, site: m[1]!, role: m[2] as IdentityRole };
}

/** `spiffe://blockmirror/<site>/<role>`, or an InvalidArgumentError for a bad site name. */
export function identityUri(site: string, role: IdentityRole): string {
  const uri = `spiffe://blockmirror/${site}/${role}`;
  if (parseIdentity(uri) === undefined) throw new InvalidArgumentError(`site ${JSON.stringify(site)} is not a DNS label (lower-case letters, digits, '-', '.')`);
  return uri;
}

/** An identity given on the command line or in a pair's spec: checked, never guessed. */
export function requireIdentity(uri: string, what: string): Identity {
  const id = parseIdentity(uri);
  if (id === undefined) throw new InvalidArgumentError(`${what} ${JSON.stringify(uri)} is not spiffe://blockmirror/<site>/<operator|sidecar-control|peer>`);
  return id;
}

/** requireIdentity, and its role is `peer`. */
export function requirePeerIdentity(uri: string, what: string): Identity {
  const id = requireIdentity(uri, what);
  if (id.role !== 'peer') throw new InvalidArgumentError(`${what} ${uri} is not a peer identity (spiffe://blockmirror/<site>/peer)`);
  return id;
}

/**
 * The blockmirror identities in a subjectAltName string as Node prints it
 * (`DNS:a, URI:spiffe://…, IP Address:…`; a value with a comma comes JSON-quoted).
 */
export function sanIdentities(subjectAltName: string | undefined): Identity[] {
  if (subjectAltName === undefined || subjectAltName === '') return [];
  const out: Identity[] = [];
  for (const entry of subjectAltName.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? []) {
    const e = entry.trim();
    if (!e.startsWith('URI:')) continue;
    let v = e.slice(4);
    if (v.startsWith('"')) {
      try {
        v = JSON.parse(v) as string;
      } catch {
        continue;
      }
    }
    const id = parseIdentity(v);
    if (id !== undefined) out.push(id);
  }
  return out;
}

/** The blockmirror identities of a PEM certificate (the first certificate of a chain). */
export function pemIdentities(pem: string | Buffer): Identity[] {
  return sanIdentities(new X509Certificate(pem).subjectAltName);
}

/**
 * The certificate's peer identity when it carries exactly one blockmirror identity and
 * that one is a peer's; else undefined (several identities make a skeleton key).
 */
export function onePeerIdentity(subjectAltName: string | undefined): Identity | undefined {
  const ids = sanIdentities(subjectAltName);
  return ids.length === 1 && ids[0]!.role === 'peer' ? ids[0] : undefined;
}
