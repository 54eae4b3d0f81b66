import { InvalidArgumentError } from '../errors.js';

// Loopback hosts: services that have no authentication of their own may bind only here.
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/;

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.test(host);
}

/** Parses host:port; refuses a non-loopback host. */
export function parseLoopbackHostPort(value: string, what: string): { host: string; port: number } {
  const hp = parseHostPort(value, what);
  if (!isLoopbackHost(hp.host)) throw new InvalidArgumentError(`${what} ${value} must be a loopback address`);
  return hp;
}

export function parseHostPort(value: string, what: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`${what} ${JSON.stringify(value)} is not HOST:PORT`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}
