import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from 'winston';
import { ControlClient } from '../sidecar/control/control-client.js';
import { readTlsMaterial, type ExpectedServer, type TlsFiles } from '../sidecar/grpc/grpc-credentials.js';
import { identityUri, pemIdentities } from '../sidecar/identity/identity.js';
import { SidecarDirectory } from './discovery/sidecar-directory.js';
import { VolumeLocator } from './discovery/volume-locator.js';
import { KubeClient } from './kube/kube-client.js';
import { acquireLeadership } from './leader-election.js';
import { Reconciler } from './reconciler.js';
import { FencedSecondary } from './secondary/fenced-secondary.js';
import type { HolderPodOptions } from './secondary/holder-pod.js';
import { WorkQueue } from './work-queue.js';
import { VolumeLineageStore } from './lineage/volume-lineage.js';

export interface OperatorConfig {
  /** Kubeconfig file; undefined: in-cluster credentials. */
  kubeconfig?: string;
  /** Namespace of the leader-election Lease and of the sidecars' registrations. */
  namespace: string;
  identity?: string;
  concurrency: number;
  pollMs: number;
  /** host:port of /healthz, /readyz and /metrics; undefined: none. */
  healthListen?: string;
  leaderElection: boolean;
  /** mTLS material for the sidecars' control API. */
  controlTls?: TlsFiles;
  /** The DNS name every sidecar's certificate carries: verified instead of the pod/node IP dialled. */
  controlServerName?: string;
  /** The holder pods of secondaries on CSI volumes; undefined: such secondaries are refused. */
  holder?: HolderPodOptions;
  logger: Logger;
}

export interface RunningOperator {
  /** Bound health/metrics address, if any. */
  healthAddress?: string;
  /** Resolves when the operator stopped by itself (lost leadership). */
  done: Promise<void>;
  stop(): Promise<void>;
}

/** Starts the operator: health endpoints at once, reconciling once it leads. */
export async function runOperator(cfg: OperatorConfig): Promise<RunningOperator> {
  const log = cfg.logger;
  const identity = cfg.identity ?? `${hostname()}-${process.pid}`;
  const kube = new KubeClient({ ...(cfg.kubeconfig !== undefined ? { kubeconfig: cfg.kubeconfig } : {}), component: 'blockmirror-operator' });
  const abort = new AbortController();

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const reconciles = new Counter({ name: 'blockmirror_operator_reconciles_total', help: 'Reconcile passes by result', labelNames: ['result'], registers: [registry] });
  const duration = new Histogram({ name: 'blockmirror_operator_reconcile_seconds', help: 'Duration of reconcile passes', registers: [registry] });
  const leader = new Gauge({ name: 'blockmirror_operator_leader', help: '1 while this instance leads', registers: [registry] });
  let phase: 'standby' | 'leading' | 'stopped' = 'standby';

  let http: Server | undefined;
  let healthAddress: string | undefined;
  if (cfg.healthListen !== undefined) {
    http = createServer((req, res) => {
      if (req.url === '/healthz') {
        res.end('ok');
      } else if (req.url === '/readyz') {
        // A standby is ready too: it is healthy and waiting for the lease.
        res.statusCode = phase === 'stopped' ? 503 : 200;
        res.end(phase);
      } else if (req.url === '/metrics') {
        registry.metrics().then(
          (text) => {
            res.setHeader('Content-Type', registry.contentType);
            res.end(text);
          },
          (err: Error) => {
            res.statusCode = 500;
            res.end(err.message);
          },
        );
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    const [host, port] = splitHostPort(cfg.healthListen);
    await new Promise<void>((resolve, reject) => http!.once('error', reject).listen(port, host, () => resolve()));
    const a = http.address();
    if (a !== null && typeof a === 'object') healthAddress = `${a.address}:${a.port}`;
  }

  const controlIdentity = cfg.controlTls === undefined ? undefined : sidecarControlIdentity(readTlsMaterial(cfg.controlTls).cert);
  const clients = new Map<string, ControlClient>();
  const control = (endpoint: string): ControlClient => {
    let c = clients.get(endpoint);
    if (c === undefined) {
      c = new ControlClient(endpoint, {
        ...(cfg.controlTls !== undefined ? { tls: cfg.controlTls } : {}),
        ...(cfg.controlServerName !== undefined ? { serverName: cfg.controlServerName } : {}),
        ...(controlIdentity !== undefined ? { expectServer: controlIdentity } : {}),
        timeoutMs: 10_000,
      });
      clients.set(endpoint, c);
    }
    return c;
  };
  const locator = new VolumeLocator(kube);
  const directory = new SidecarDirectory(kube, cfg.namespace);

  const started = (async () => {
    let lost: Promise<void> = new Promise(() => undefined);
    if (cfg.leaderElection) {
      ({ lost } = await acquireLeadership({ client: kube, namespace: cfg.namespace, name: 'blockmirror-operator', identity, logger: log, signal: abort.signal }));
    }
    leader.set(1);
    // The reconciler reads the informer's cache, which exists once the watch starts.
    const informer: { cache?: ReturnType<KubeClient['watchPairs']> } = {};
    const fenced =
      cfg.holder === undefined
        ? undefined
        : new FencedSecondary({
            sidecars: () => directory.all(),
            control,
            pods: kube,
            holder: cfg.holder,
            // Best effort, as the reconciler's own events.
            event: (pair, e) =>
              kube.recordEvent(pair, e).catch((err: unknown) => {
                log.warn('event not recorded', { reason: e.reason, error: (err as Error).message });
              }),
            logger: log,
            pollMs: cfg.pollMs,
          });
    const reconciler = new Reconciler({
      cached: (ns, name) => informer.cache?.get(ns, name),
      kube,
      locate: (ns, pvc) => locator.locate(ns, pvc),
      ...(fenced !== undefined ? { fenced } : {}),
      sidecarFor: (node) => directory.forNode(node),
      control,
      lineage: new VolumeLineageStore(kube),
      logger: log,
      pollMs: cfg.pollMs,
    });
    const queue = new WorkQueue(
      async (key, signal) => {
        const end = duration.startTimer();
        log.debug('reconcile', { pair: key });
        try {
          const r = await reconciler.reconcile(key, signal);
          reconciles.inc({ result: 'ok' });
          return r;
        } catch (err) {
          reconciles.inc({ result: 'error' });
          throw err;
        } finally {
          end();
        }
      },
      {
        concurrency: cfg.concurrency,
        onError: (key, err, retryInMs) => log.warn('reconcile failed; retrying', { pair: key, error: (err as Error).message, retryInMs }),
      },
    );
    const keyOf = (p: { metadata: { namespace: string; name: string } }): string => `${p.metadata.namespace}/${p.metadata.name}`;
    const cache = kube.watchPairs({
      onUpsert: (p) => queue.add(keyOf(p)),
      onDelete: (p) => queue.forget(keyOf(p)),
      onError: (err, retryInMs) => log.warn('watch of ReplicationPairs failed; restarting', { error: (err as Error).message, retryInMs }),
    });
    informer.cache = cache;
    phase = 'leading';
    log.info('operator reconciling', { identity, namespace: cfg.namespace });
    await Promise.race([lost, new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }))]);
    if (!abort.signal.aborted) log.error('lost leadership; stopping');
    leader.set(0);
    phase = 'stopped';
    queue.shutdown();
    await cache.stop();
  })();

  const stop = async (): Promise<void> => {
    abort.abort(new Error('operator stopping'));
    await started.catch(() => undefined);
    for (const c of clients.values()) c.close();
    if (http !== undefined) await new Promise<void>((resolve) => http!.close(() => resolve()));
  };
  return {
    ...(healthAddress !== undefined ? { healthAddress } : {}),
    done: started.catch((err: unknown) => {
      if (!abort.signal.aborted) throw err;
    }),
    stop,
  };
}

function splitHostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i).replace(/^\[|\]$/g, ''), Number(s.slice(i + 1))];
}

/** The sidecars' control identity of the operator's own site (from its certificate), else any sidecar-control. */
function sidecarControlIdentity(operatorCert: Buffer): ExpectedServer {
  const site = pemIdentities(operatorCert)[0]?.site;
  return site === undefined ? { role: 'sidecar-control' } : { role: 'sidecar-control', uri: identityUri(site, 'sidecar-control') };
}
