import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { parseHostPort } from '../net/host-port.js';

/**
 * The supervisor's own liveness endpoint: /healthz answers while its loop runs. The
 * kubelet probes this, not the sidecar: a sidecar that is restarting is the supervisor's
 * to handle (and to fall back for), and a hung one it kills itself.
 */
export async function serveSupervisorHealth(listen: string): Promise<Server> {
  const { host, port } = parseHostPort(listen, '--health-listen');
  const server = createServer((req, res) => {
    const ok = req.url === '/healthz';
    res.writeHead(ok ? 200 : 404, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not found\n');
  });
  server.listen(port, host);
  await once(server, 'listening');
  return server;
}

/** A health check of the sidecar: its /healthz at `url` answers 2xx. */
export function httpHealthCheck(url: string): (signal: AbortSignal) => Promise<boolean> {
  return async (signal) => {
    const res = await fetch(url, { signal });
    await res.body?.cancel();
    return res.ok;
  };
}
