import { Server as GrpcServer } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'winston';
import { ControlServer } from '../control/control-server.js';
import { makeDirDurable } from '../fs/make-dir-durable.js';
import { readPem, readTlsMaterial, serverCredentials, type TlsFiles } from '../grpc/grpc-credentials.js';
import { peerServiceDefinition } from '../replication/wire/peer-service.js';
import { SidecarMetrics } from '../metrics/sidecar-metrics.js';
import { raiseServerFlowControlWindow } from '../grpc/server-flow-control.js';
import { GroupCommitter } from '../replication/secondary/group-committer.js';
import { PeerFront } from '../replication/secondary/peer-front.js';
import { replicationService } from '../replication/secondary/replication-service.js';
import type { SitePairLocator } from '../replication/secondary/site-pair-locator.js';
import { MAX_PEER_MESSAGE_BYTES, PEER_FLOW_CONTROL_WINDOW } from '../replication/wire/peer-protocol.js';
import { parseHostPort } from '../net/host-port.js';
import { PairManager } from '../pair/pair-manager.js';
import { Dmsetup } from '../splice/dmsetup.js';
import { EraTracker } from '../splice/era-tracker.js';
import { NbdNetlink, type NbdNetlinkOptions } from '../splice/nbd-netlink.js';
import { probeSpliceCapability, type SpliceCapability, type SpliceProbeOptions } from '../splice/splice-capability.js';
import { VolumeSplice } from '../splice/volume-splice.js';
import { FenceStore } from '../fence/fence-store.js';
import { operatorIdentityFor } from '../identity/operator-identity.js';
import { requirePeerIdentity } from '../identity/identity.js';
import { PathPolicy } from '../paths/path-policy.js';
import { heldDevice } from '../paths/held-device.js';
import { resolveBlockDevice } from '../csi/block-device.js';

export interface SidecarConfig {
  stateDir: string;
  /**
   * Where pair volumes may be, besides the state dir (always allowed) and the devices the
   * node splice and fences hold: directories, or single files and devices (PathPolicy).
   */
  allowVolumePrefixes?: readonly string[];
  /** The only directory NBD sockets are made in (default: STATE_DIR/run). */
  runDir?: string;
  controlListen: string;
  /** Also serve the control API on this Unix socket, without TLS (root on the node, the CSI proxy). */
  controlSocket?: string;
  peerListen: string;
  metricsListen?: string;
  /** The control server's identity (spiffe://blockmirror/<site>/sidecar-control), and its CA. */
  tls?: TlsFiles;
  /**
   * The peer link's identity (spiffe://blockmirror/<site>/peer): served on the peer port
   * and presented when dialling. Default: `tls`.
   */
  peerTls?: TlsFiles;
  /** The one client identity the control port admits over TLS (default: the operator of `tls`'s site). */
  operatorIdentity?: string;
  /** The remote peer identity of pairs whose spec names none (default: any peer identity). */
  remotePeerIdentity?: string;
  /** Sync pairs: foreground bytes in flight to the secondary before writes wait. */
  replicationBudgetBytes?: number;
  logger: Logger;
  /** The node's device-mapper splice; absent: the Stage/Attach RPCs are refused. */
  splice?: NbdNetlinkOptions;
  /** Where the start-up probe of the node's splice capability looks (default: /dev, /sys, dmsetup). */
  spliceProbe?: Partial<Omit<SpliceProbeOptions, 'nbdHelper'>>;
  /** The site's other sidecars: handshakes for pairs they hold are redirected to them. */
  site?: SitePairLocator;
  /** The name the remote sidecars' peer certificates carry (default: the dialled host). */
  peerServerName?: string;
  /**
   * A CA bundle file (PEM) trusted for peers instead of the peer link's own CA: the remote site's CA.
   * Every sidecar of a site needs it, since any of them may be the entry point that
   * redirects a remote primary (its TLS is checked before the handshake).
   */
  peerTrustCa?: string;
  /** Test only: kill -9 the sidecar at this point of a role change (PairManager FAILPOINTS). */
  crashAt?: string;
}

/** The node splice of a sidecar whose pairs live in `stateDir` (also used by the supervisor). */
export function nodeSplice(stateDir: string, nbd: NbdNetlinkOptions, logger: Logger): VolumeSplice {
  const dm = new Dmsetup();
  return new VolumeSplice({ stateDir, dm, nbd: new NbdNetlink(nbd), era: new EraTracker({ dm }), logger });
}

export interface SidecarAddresses {
  control: string;
  /** unix:///path of the control socket, '' without one. */
  controlSocket: string;
  peer: string;
  metrics: string;
}

/** The sidecar process: pairs, control API, peer listener and metrics, wired together. */
export class SidecarDaemon {
  readonly addresses: SidecarAddresses;
  /** Whether this node can splice, as probed at start (registered for the operator). */
  readonly spliceCapability: SpliceCapability;
  readonly #pairs: PairManager;
  readonly #control: ControlServer;
  readonly #peer: GrpcServer;
  readonly #peerFront: PeerFront;
  readonly #committer: GroupCommitter;
  readonly #metricsHttp: HttpServer | null;
  readonly #logger: Logger;

  private constructor(
    addresses: SidecarAddresses,
    spliceCapability: SpliceCapability,
    pairs: PairManager,
    control: ControlServer,
    peer: GrpcServer,
    peerFront: PeerFront,
    committer: GroupCommitter,
    metricsHttp: HttpServer | null,
    logger: Logger,
  ) {
    this.spliceCapability = spliceCapability;
    this.#peerFront = peerFront;
    this.#committer = committer;
    this.addresses = addresses;
    this.#pairs = pairs;
    this.#control = control;
    this.#peer = peer;
    this.#metricsHttp = metricsHttp;
    this.#logger = logger;
  }

  static async start(cfg: SidecarConfig): Promise<SidecarDaemon> {
    // Validate every listener before touching state, so a bad flag fails fast.
    const controlCreds = serverCredentials(cfg.controlListen, 'control listen address', cfg.tls);
    const peerTls = cfg.peerTls ?? cfg.tls;
    // Checked for the loopback-or-TLS rule; the peer front terminates TLS itself.
    serverCredentials(cfg.peerListen, 'peer listen address', peerTls);
    const operatorIdentity = cfg.tls === undefined ? undefined : operatorIdentityFor(readTlsMaterial(cfg.tls).cert, cfg.operatorIdentity);
    if (cfg.remotePeerIdentity !== undefined) requirePeerIdentity(cfg.remotePeerIdentity, '--remote-peer-identity');
    if (cfg.metricsListen) parseHostPort(cfg.metricsListen, 'metrics listen address');
    // The state dir and the commit-record dir durable in their parents: a commit record
    // written into a directory a power cut can remove would not protect its group.
    await mkdir(cfg.stateDir, { recursive: true });
    await makeDirDurable(join(cfg.stateDir, 'groups'), dirname(resolve(cfg.stateDir)));

    // Once, before anything asks: the operator refuses to replicate a volume that opts in
    // to the splice on a node that cannot splice, and says why from this.
    const capability = await probeSpliceCapability({
      dm: new Dmsetup(),
      ...(cfg.splice ? { nbdHelper: cfg.splice.binary } : {}),
      ...cfg.spliceProbe,
    });
    if (capability.capable) cfg.logger.info('node can splice', { checks: capability.checks.map((c) => c.detail) });
    else cfg.logger.warn('node cannot splice', { reason: capability.reason });

    const trustCa = cfg.peerTrustCa === undefined ? undefined : readPem(cfg.peerTrustCa, 'peer trust CA');
    const fences = new FenceStore(cfg.stateDir);
    const paths = new PathPolicy({
      volumePrefixes: [cfg.stateDir, ...(cfg.allowVolumePrefixes ?? [])],
      runDir: cfg.runDir ?? join(cfg.stateDir, 'run'),
      heldDevice: heldDevice(cfg.stateDir, fences),
    });
    cfg.logger.info('path policy', { allowedVolumePrefixes: paths.volumePrefixes, runDir: paths.runDir });
    let metrics: SidecarMetrics | null = null;
    const splice = cfg.splice ? nodeSplice(cfg.stateDir, cfg.splice, cfg.logger) : null;
    // Made before the pairs, used once they run: a promotion waits for groups being applied.
    const committer = new GroupCommitter({ dir: join(cfg.stateDir, 'groups'), lookup: (name) => pairs.secondaryEndpoint(name), logger: cfg.logger });
    const pairs: PairManager = new PairManager({
      stateDir: cfg.stateDir,
      logger: cfg.logger,
      paths,
      ...(peerTls ? { tls: peerTls } : {}),
      ...(cfg.remotePeerIdentity ? { remotePeerIdentity: cfg.remotePeerIdentity } : {}),
      ...(cfg.peerServerName ? { peerServerName: cfg.peerServerName } : {}),
      ...(trustCa !== undefined ? { peerTrustCa: trustCa } : {}),
      ...(cfg.replicationBudgetBytes ? { replicationBudgetBytes: cfg.replicationBudgetBytes } : {}),
      onProtocolError: (pair, reason) => metrics?.protocolError(pair, reason),
      groupsSettled: (pair) => committer.settled(pair),
      ...(cfg.crashAt !== undefined ? { crashAt: cfg.crashAt } : {}),
      ...(splice ? { splicedPairs: () => splice.splicedPairs(), onRestarted: (pair: string) => splice.reconnectPair(pair, pairs) } : {}),
    });
    metrics = new SidecarMetrics(() => pairs.list(), { spliceCapable: capability.capable });
    // Pairs carrying a spliced volume replicate only once the splice is recovered: writes
    // made on the fallback path must be recorded before a consistency group is cut, or
    // the group would hold data newer than its point in time.
    await pairs.start(splice ? await splice.splicedPairs() : new Set());
    if (splice) await splice.recover(pairs);
    pairs.releaseReplication();

    // A node that cannot splice refuses the volume calls with the probe's reason.
    const control = new ControlServer(pairs, cfg.logger, {
      splice,
      ...(splice !== null && !capability.capable ? { spliceRefusal: capability.reason } : {}),
      // Fences need no splice: a secondary's node may have none.
      fences,
      ...(operatorIdentity !== undefined ? { operatorIdentity, onRefused: () => metrics?.controlRefused() } : {}),
      // The CSI proxy names the device its driver published at its private path (under
      // the kubelet's plugins dir); the records keep the kernel's node.
      device: async (path) => resolveBlockDevice(await paths.volume(path, 'device')),
    });
    if (operatorIdentity !== undefined) cfg.logger.info('control port admits one client identity over TLS', { operatorIdentity });
    const controlAddr = await control.listen(cfg.controlListen, controlCreds);
    const controlSocket = cfg.controlSocket !== undefined ? await control.listenUnix(cfg.controlSocket) : '';

    // Consistency groups a crash interrupted mid-apply are finished before any peer
    // can send more: until then the secondary volumes are between two groups.
    await committer.recover(pairs.secondaryEndpoints());

    // The peer port: the replication service (secondary side) and health.
    const peer = new GrpcServer({ 'grpc.max_receive_message_length': MAX_PEER_MESSAGE_BYTES });
    // Frames of up to a few MiB stream in without waiting for a window update each 64 KiB.
    raiseServerFlowControlWindow(peer, PEER_FLOW_CONTROL_WINDOW);
    peer.addService(
      peerServiceDefinition(),
      replicationService({
        lookup: (name) => pairs.secondaryEndpoint(name),
        remoteIdentity: (name) => pairs.remoteIdentity(name),
        responder: (name) => pairs.handshakeResponder(name),
        peerReady: (name) => pairs.peerReady(name),
        commitGroup: (req) => committer.commitGroup(req),
        logger: cfg.logger,
        onRefused: (reason) => metrics?.peerRefused(reason),
        ...(cfg.site ? { site: cfg.site } : {}),
        onRedirected: () => metrics?.peerRedirect(),
      }),
    );
    new HealthImplementation({ '': 'SERVING' }).addToServer(peer);
    const peerFront = await PeerFront.listen(cfg.peerListen, peer, {
      // Given the remote site's CA, the peer port trusts it instead of this site's own: a
      // node of this site is never another's primary, so its peer key is no use here.
      ...(peerTls ? { tls: { ...readTlsMaterial(peerTls), ...(trustCa !== undefined ? { ca: Buffer.from(trustCa) } : {}) } } : {}),
      logger: cfg.logger,
      onRefused: (reason) => metrics?.peerRefused(reason),
      onAccepted: () => metrics?.peerConnection(),
      extraCas: () => pairs.peerCas(),
    });

    pairs.peerPortServing();

    let metricsHttp: HttpServer | null = null;
    let metricsAddr = '';
    if (cfg.metricsListen) {
      const { host, port } = parseHostPort(cfg.metricsListen, 'metrics listen address');
      const registry = metrics.registry;
      metricsHttp = createServer((req, res) => {
        if (req.url === '/metrics') {
          registry.metrics().then(
            (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
            (err: Error) => res.writeHead(500).end(err.message),
          );
        } else if (req.url === '/healthz') {
          res.writeHead(200).end('ok\n');
        } else {
          res.writeHead(404).end();
        }
      });
      await new Promise<void>((resolve, reject) => {
        metricsHttp!.once('error', reject);
        metricsHttp!.listen({ host, port }, () => resolve());
      });
      metricsAddr = `${host}:${(metricsHttp.address() as AddressInfo).port}`;
    }
    control.setServing(true);
    const addresses = { control: controlAddr, controlSocket, peer: peerFront.address, metrics: metricsAddr };
    cfg.logger.info('sidecar ready', addresses);
    return new SidecarDaemon(addresses, capability, pairs, control, peer, peerFront, committer, metricsHttp, cfg.logger);
  }

  /**
   * The pairs held here, registered for the site's redirects: every role, since a
   * primary answers handshakes too (two primaries of a pair must find each other).
   */
  secondaryPairs(): string[] {
    return this.#pairs.pairNames();
  }

  /** Graceful stop: refuse new calls, finish in-flight I/O, persist bitmaps. */
  async stop(): Promise<void> {
    this.#logger.info('sidecar stopping');
    await this.#control.close();
    // Stop accepting, then end the peer sessions (the front's close waits for them).
    const frontClosed = this.#peerFront.close();
    this.#peer.forceShutdown();
    await Promise.race([frontClosed, new Promise((r) => setTimeout(r, 2000).unref())]);
    this.#committer.close();
    await this.#pairs.close();
    await new Promise<void>((resolve) => (this.#metricsHttp ? this.#metricsHttp.close(() => resolve()) : resolve()));
    this.#logger.info('sidecar stopped');
  }
}
