import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOk } from './run-cli.js';

export interface Identity {
  cert: string;
  key: string;
}

export interface TestPki {
  ca: string;
  server: Identity;
  client: Identity;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await runOk('openssl', args, { cwd, timeoutMs: 30_000 });
}

/** A throwaway CA with a server certificate for 127.0.0.1/localhost and a client one. */
export async function makeTestPki(dir: string, prefix = 'ca'): Promise<TestPki> {
  const p = (f: string): string => join(dir, `${prefix}-${f}`);
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${prefix} test CA`, '-keyout', p('ca.key'), '-out', p('ca.crt')], dir);
  const issue = async (name: string, ext: string): Promise<Identity> => {
    await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`)], dir);
    writeFileSync(p(`${name}.ext`), ext);
    await openssl(['x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-days', '2', '-out', p(`${name}.crt`), '-extfile', p(`${name}.ext`)], dir);
    return { cert: p(`${name}.crt`), key: p(`${name}.key`) };
  };
  const server = await issue('server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  const client = await issue('client', 'extendedKeyUsage=clientAuth\n');
  return { ca: p('ca.crt'), server, client };
}
