import { hostname } from 'node:os';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError as CommanderArgError, Option } from 'commander';
import type { Logger } from 'winston';
import type { NbdNetlinkOptions } from '../splice/nbd-netlink.js';
import { readTlsMaterial, tlsFilesFrom, type TlsFiles } from '../grpc/grpc-credentials.js';
import { InvalidArgumentError } from '../errors.js';
import { ControlClient } from '../control/control-client.js';
import { pairToJson } from '../control/pair-json.js';
import { lineageToProto, parseLineageRecord } from '../control/lineage-record.js';
import { formatPair, formatPairList } from './format-pair.js';
import { DEFAULT_DEMOTE_TIMEOUT_MS } from '../pair/demote-timeout.js';
import { FAILPOINTS } from '../pair/failpoints.js';
import { loadCsiProto, loadPluginRegistrationProto, type CsiProto, type PluginRegistrationProto } from '../grpc/load-proto.js';
import { LAB_DRIVER_NAME } from '../csi/lab-driver/lab-driver-name.js';

interface TlsFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

/** The sidecar's peer link identity: --peer-cert/--peer-key/--peer-ca, all three or none. */
function peerLinkFiles(opts: { peerCert?: string; peerKey?: string; peerCa?: string }): { peerTls?: TlsFiles } {
  const files = tlsFilesFrom({ tlsCert: opts.peerCert, tlsKey: opts.peerKey, tlsCa: opts.peerCa }, '--peer');
  return files ? { peerTls: files } : {};
}

function addTlsOptions(cmd: Command): Command {
  return cmd
    .option('--tls-cert <file>', 'certificate (PEM) for mutual TLS')
    .option('--tls-key <file>', 'private key (PEM) for mutual TLS')
    .option('--tls-ca <file>', 'CA bundle (PEM) that peers and clients must chain to');
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n <= 0) throw new CommanderArgError(`${JSON.stringify(value)} is not a positive integer`);
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new CommanderArgError(`${JSON.stringify(value)} is not a whole number`);
  return n;
}

/** The node splice's flags, shared by `sidecar` and `supervise`. */
function addSpliceOptions(cmd: Command): Command {
  return cmd
    .option('--nbd-helper <path>', 'the blockmirror-nbd netlink helper; enables the node splice (Stage/Attach/Detach)')
    .option('--nbd-request-timeout <s>', 'seconds before the kernel requeues an unanswered NBD request for a new connection', positiveInt, 30)
    .option('--nbd-dead-timeout <s>', 'seconds I/O waits for a restarted sidecar before the NBD device gives up (the tap then queues it)', positiveInt, 120);
}

interface SpliceFlags {
  nbdHelper?: string;
  nbdRequestTimeout: number;
  nbdDeadTimeout: number;
}

function spliceOptions(opts: SpliceFlags): NbdNetlinkOptions | undefined {
  return opts.nbdHelper === undefined ? undefined : { binary: resolve(opts.nbdHelper), requestTimeoutS: opts.nbdRequestTimeout, deadConnTimeoutS: opts.nbdDeadTimeout };
}

function logLevelOption(): Option {
  return new Option('--log-level <level>', 'log level').choices(['error', 'warn', 'info', 'debug']).default('info');
}

/**
 * Runs until SIGTERM or SIGINT (or `done` settles), then `stop`. A failure of either
 * sets a non-zero exit code.
 */
async function untilSignal(logger: Logger, stop: () => Promise<void>, done?: Promise<void>): Promise<void> {
  await new Promise<void>((resolve) => {
    let stopping = false;
    const finish = (why: string): void => {
      if (stopping) return;
      stopping = true;
      if (why.startsWith('SIG')) logger.info('signal received', { signal: why });
      else logger.info('stopping', { why });
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      stop().then(resolve, (err: Error) => {
        logger.error('shutdown failed', { error: err.message });
        process.exitCode = 1;
        resolve();
      });
    };
    const onTerm = (): void => finish('SIGTERM');
    const onInt = (): void => finish('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    done?.then(
      () => {
        process.exitCode = 1;
        finish('stopped by itself');
      },
      (err: Error) => {
        logger.error('failed', { error: err.message });
        process.exitCode = 1;
        finish('failure');
      },
    );
  });
}

/**
 * The log of a long-running command. Loaded here, as each command's own modules are in
 * its action: a CLI call (pair status, promote) then loads little more than the control
 * client, and starts in about half the time.
 */
async function createLogger(level: string): Promise<Logger> {
  return (await import('../log/create-logger.js')).createLogger({ level });
}

/** Lets the logger drain, then leaves even if a library holds a handle open. */
async function exitAfterLogs(logger: Logger): Promise<void> {
  await new Promise<void>((resolve) => logger.on('finish', () => resolve()).end());
  process.exit(process.exitCode ?? 0);
}

function csiProtoDirOption(): Option {
  return new Option('--csi-proto-dir <dir>', 'folder holding the CSI spec\'s csi.proto (default: the pinned Go module, via `go mod download`)').env('BLOCKMIRROR_CSI_PROTO_DIR');
}

/** csi.proto from the folder given, else from the pinned spec module in the Go module cache. */
async function csiProto(dir: string | undefined): Promise<CsiProto> {
  return loadCsiProto(dir ?? (await (await import('../csi/resolve-csi-proto-dir.js')).resolveCsiProtoDir()));
}

/** How a CSI node plugin (the lab driver; the CSI proxy in its driver's place) registers with the kubelet. */
function addKubeletRegistrationOptions(cmd: Command): Command {
  return cmd
    .option('--registration-dir <dir>', "register with the kubelet through its plugin registration directory (e.g. /var/lib/kubelet/plugins_registry), as node-driver-registrar does")
    .option('--kubelet-registration-path <path>', 'the CSI socket as the kubelet sees it (default: the path of --endpoint)')
    .addOption(
      new Option('--plugin-registration-proto-dir <dir>', "folder holding the kubelet's plugin registration api.proto (default: the pinned k8s.io/kubelet Go module, via `go mod download`)").env(
        'BLOCKMIRROR_PLUGIN_REGISTRATION_PROTO_DIR',
      ),
    );
}

interface KubeletRegistrationFlags {
  registrationDir?: string;
  kubeletRegistrationPath?: string;
  pluginRegistrationProtoDir?: string;
}

/** The registration proto from the folder given, else from the pinned k8s.io/kubelet module. */
async function pluginRegistrationProto(dir: string | undefined): Promise<PluginRegistrationProto> {
  return loadPluginRegistrationProto(dir ?? (await (await import('../csi/resolve-plugin-registration-proto-dir.js')).resolvePluginRegistrationProtoDir()));
}

/** The `blockmirror` command line. */
export function buildProgram(): Command {
  const program = new Command('blockmirror')
    .description('Block-level replication of persistent volumes')
    .showSuggestionAfterError()
    // `supervise -- <command...>` passes the sidecar's own flags through untouched.
    .enablePositionalOptions()
    .configureOutput({ outputError: (str, write) => write(str.split('\n').find((l) => l.trim() !== '') + '\n') });

  addTlsOptions(
    program
      .command('sidecar')
      .description('run the sidecar daemon in the foreground')
      .requiredOption('--state-dir <dir>', 'directory for pair definitions and dirty logs')
      .option(
        '--allow-volume-prefix <path>',
        "pairs may use volumes that resolve (symlinks and '..' followed) to this directory or below it, or to this very file or device; repeatable. Always allowed: the state dir, and devices the node splice staged or a fence holds",
        (value: string, previous: string[]) => [...previous, value],
        [] as string[],
      )
      .option('--run-dir <dir>', 'the only directory NBD sockets are made in (made 0700; default: STATE_DIR/run)')
      .option('--control-listen <host:port>', 'control API address (loopback unless TLS is given)', '127.0.0.1:7400')
      .option('--control-socket <path>', "also serve the control API on this Unix socket, without TLS (its directory is made root-only): for root on the node and the CSI proxy")
      .option('--peer-listen <host:port>', 'peer replication address (loopback unless TLS is given)', '127.0.0.1:7401')
      .option('--metrics-listen <host:port>', 'Prometheus metrics address')
      .option('--register-node <node>', 'announce this sidecar to the operator as the one of this node (a Lease in the API server)')
      .option('--register-namespace <ns>', 'namespace of the registration Lease', 'blockmirror-system')
      .option('--kubeconfig <file>', 'kubeconfig for the registration (default: in-cluster credentials)')
      .option('--advertise-control <host:port>', 'control address to register (default: the bound one)')
      .option('--advertise-peer <host:port>', 'peer address to register (default: the bound one)')
      .option('--peer-server-name <name>', "the name remote sidecars' peer certificates carry, verified instead of the dialled address (a redirect dials a node address)")
      .option('--peer-trust-ca <file>', "the remote site's CA bundle (PEM), trusted on the peer port and when dialling peers instead of this site's own (--peer-ca, else --tls-ca)")
      .option('--peer-cert <file>', 'the peer link\'s own certificate (PEM, spiffe://blockmirror/<site>/peer), served on the peer port and presented when dialling (default: --tls-cert)')
      .option('--peer-key <file>', "the peer link certificate's private key (PEM)")
      .option('--peer-ca <file>', "CA bundle (PEM) the peer link trusts (default: --tls-ca); the remote site's goes in --peer-trust-ca")
      .option('--operator-identity <uri>', "the one client identity the control port admits over TLS (default: spiffe://blockmirror/<site>/operator, <site> from --tls-cert's own identity)")
      .option('--remote-peer-identity <uri>', "the remote site's peer identity (spiffe://blockmirror/<site>/peer) for pairs that name none: their secondaries accept only it, their primaries dial only it")
      .option('--replication-budget <bytes>', 'sync mode: foreground write bytes in flight to the secondary per pair before writes wait (bounds the memory a slow peer pins)', positiveInt, 32 << 20)
      .addOption(new Option('--crash-at <point>', 'tests only: kill -9 this process at this point of a role change').choices([...FAILPOINTS]).hideHelp())
      .addOption(logLevelOption()),
  );
  addSpliceOptions(program.commands.find((c) => c.name() === 'sidecar')!).action(
    async (
      opts: {
        stateDir: string;
        allowVolumePrefix: string[];
        runDir?: string;
        controlListen: string;
        controlSocket?: string;
        peerListen: string;
        metricsListen?: string;
        logLevel: string;
        registerNode?: string;
        registerNamespace: string;
        kubeconfig?: string;
        advertiseControl?: string;
        advertisePeer?: string;
        peerServerName?: string;
        peerTrustCa?: string;
        peerCert?: string;
        peerKey?: string;
        peerCa?: string;
        operatorIdentity?: string;
        remotePeerIdentity?: string;
        replicationBudget: number;
        crashAt?: string;
      } & TlsFlags &
        SpliceFlags,
    ) => {
      const logger = await createLogger(opts.logLevel);
      const splice = spliceOptions(opts);
      // Loaded only when registering: a sidecar outside Kubernetes never touches the client.
      const kube =
        opts.registerNode === undefined
          ? undefined
          : {
              node: opts.registerNode,
              client: new (await import('../../operator/kube/kube-client.js')).KubeClient({ ...(opts.kubeconfig !== undefined ? { kubeconfig: opts.kubeconfig } : {}), component: 'blockmirror-sidecar' }),
              locator: (await import('../../operator/discovery/lease-pair-locator.js')).LeasePairLocator,
            };
      const { SidecarDaemon } = await import('../daemon/sidecar-daemon.js');
      const daemon = await SidecarDaemon.start({
        ...(splice ? { splice } : {}),
        ...(kube ? { site: new kube.locator({ client: kube.client, namespace: opts.registerNamespace, node: kube.node }) } : {}),
        stateDir: opts.stateDir,
        allowVolumePrefixes: opts.allowVolumePrefix.map((p) => resolve(p)),
        ...(opts.runDir !== undefined ? { runDir: resolve(opts.runDir) } : {}),
        controlListen: opts.controlListen,
        ...(opts.controlSocket !== undefined ? { controlSocket: resolve(opts.controlSocket) } : {}),
        peerListen: opts.peerListen,
        ...(opts.metricsListen ? { metricsListen: opts.metricsListen } : {}),
        tls: tlsFilesFrom(opts),
        ...peerLinkFiles(opts),
        ...(opts.operatorIdentity ? { operatorIdentity: opts.operatorIdentity } : {}),
        ...(opts.remotePeerIdentity ? { remotePeerIdentity: opts.remotePeerIdentity } : {}),
        ...(opts.peerServerName ? { peerServerName: opts.peerServerName } : {}),
        ...(opts.peerTrustCa ? { peerTrustCa: resolve(opts.peerTrustCa) } : {}),
        replicationBudgetBytes: opts.replicationBudget,
        ...(opts.crashAt !== undefined ? { crashAt: opts.crashAt } : {}),
        logger,
      });
      let registration: Promise<void> = Promise.resolve();
      const unregister = new AbortController();
      if (kube !== undefined) {
        const { runNodeRegistration } = await import('../../operator/discovery/node-registration.js');
        registration = runNodeRegistration({
          client: kube.client,
          namespace: opts.registerNamespace,
          node: kube.node,
          secondaryPairs: () => daemon.secondaryPairs(),
          controlEndpoint: opts.advertiseControl ?? daemon.addresses.control,
          peerEndpoint: opts.advertisePeer ?? daemon.addresses.peer,
          splice: daemon.spliceCapability.capable ? { capable: true } : { capable: false, reason: daemon.spliceCapability.reason },
          logger,
          signal: unregister.signal,
        });
      }
      await untilSignal(logger, async () => {
        unregister.abort();
        await registration;
        await daemon.stop();
      });
      await exitAfterLogs(logger);
    },
  );

  addTlsOptions(
    program
      .command('operator')
      .description('run the operator: reconciles ReplicationPairs onto the sidecars (TLS flags: for the sidecars\' control API)')
      .option('--kubeconfig <file>', 'kubeconfig (default: in-cluster credentials)')
      .option('--namespace <ns>', 'namespace of the leader-election Lease and the sidecar registrations', 'blockmirror-system')
      .option('--health-listen <host:port>', '/healthz, /readyz and /metrics address', '127.0.0.1:8081')
      .option('--concurrency <n>', 'pairs reconciled at once', positiveInt, 4)
      .option('--poll-ms <ms>', "how often a pair's status is refreshed from its sidecar", positiveInt, 2000)
      .option('--identity <id>', 'leader-election identity (default: hostname-pid)')
      .option('--no-leader-elect', 'reconcile without taking the leader Lease (one replica only)')
      .option('--control-server-name <dns-name>', "the name every sidecar's certificate carries: verified instead of the address dialled (one certificate for every node)")
      .option('--holder-image <image>', "image of the pods that stage secondaries on CSI volumes (it needs sh and sleep; the chart gives the sidecar's, which every node has). Without it, secondaries on CSI volumes are refused")
      .addOption(new Option('--holder-pull-policy <policy>', 'imagePullPolicy of those pods').choices(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'))
      .addOption(logLevelOption()),
  ).action(
    async (
      opts: {
        kubeconfig?: string;
        namespace: string;
        healthListen: string;
        concurrency: number;
        pollMs: number;
        identity?: string;
        leaderElect: boolean;
        controlServerName?: string;
        holderImage?: string;
        holderPullPolicy: 'Always' | 'IfNotPresent' | 'Never';
        logLevel: string;
      } & TlsFlags,
    ) => {
      const logger = await createLogger(opts.logLevel);
      const { runOperator } = await import('../../operator/run-operator.js');
      const tls = tlsFilesFrom(opts);
      const op = await runOperator({
        ...(opts.kubeconfig !== undefined ? { kubeconfig: opts.kubeconfig } : {}),
        namespace: opts.namespace,
        ...(opts.identity !== undefined ? { identity: opts.identity } : {}),
        concurrency: opts.concurrency,
        pollMs: opts.pollMs,
        healthListen: opts.healthListen,
        leaderElection: opts.leaderElect,
        ...(tls !== undefined ? { controlTls: tls } : {}),
        ...(opts.controlServerName !== undefined ? { controlServerName: opts.controlServerName } : {}),
        ...(opts.holderImage !== undefined ? { holder: { image: opts.holderImage, pullPolicy: opts.holderPullPolicy } } : {}),
        logger,
      });
      logger.info('operator ready', { health: op.healthAddress ?? '' });
      await untilSignal(logger, () => op.stop(), op.done);
      await exitAfterLogs(logger);
    },
  );

  addSpliceOptions(
    program
      .command('supervise')
      .description('run a sidecar command, restart it when it dies, and fall back to the direct path when it stays down')
      .requiredOption('--state-dir <dir>', "the sidecar's state directory (its spliced volumes)")
      .option('--fallback-after <s>', 'seconds applications may wait for a dead sidecar before the fallback', positiveInt, 20)
      .option('--health-listen <host:port>', "the supervisor's own /healthz (for the kubelet's liveness probe)")
      .option('--child-health <url>', "the sidecar's /healthz: a ready sidecar that stops answering it is killed and restarted")
      .option('--hung-after <s>', 'seconds a ready sidecar may fail its health check before it is killed', positiveInt, 60)
      .addOption(logLevelOption())
      .argument('<command...>', 'the sidecar command line (after --)')
      .passThroughOptions(),
  ).action(async (command: string[], opts: { stateDir: string; fallbackAfter: number; healthListen?: string; childHealth?: string; hungAfter: number; logLevel: string } & SpliceFlags) => {
    const logger = await createLogger(opts.logLevel);
    const nbd = spliceOptions(opts);
    if (nbd === undefined) throw new CommanderArgError('--nbd-helper is required: the fallback needs it');
    const [{ nodeSplice }, { superviseSidecar }, { httpHealthCheck, serveSupervisorHealth }] = await Promise.all([
      import('../daemon/sidecar-daemon.js'),
      import('../supervise/sidecar-supervisor.js'),
      import('../supervise/supervisor-health.js'),
    ]);
    const splice = nodeSplice(resolve(opts.stateDir), nbd, logger);
    const stop = new AbortController();
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => stop.abort());
    const health = opts.healthListen === undefined ? undefined : await serveSupervisorHealth(opts.healthListen);
    await superviseSidecar({
      command: command[0]!,
      args: command.slice(1),
      fallback: () => splice.fallbackAll(),
      fallbackAfterMs: opts.fallbackAfter * 1000,
      logger,
      signal: stop.signal,
      ...(opts.childHealth !== undefined ? { childHealth: { check: httpHealthCheck(opts.childHealth), intervalMs: 10_000, hungAfterMs: opts.hungAfter * 1000 } } : {}),
    });
    health?.close();
    await exitAfterLogs(logger);
  });

  const volume = program.command('volume').description("the node splice: a volume's /dev/mapper/blockmirror-<pv> and its attachment to a pair");
  withVolumeControl(volume.command('stage <pv> <device>').description('create /dev/mapper/blockmirror-<pv> over the block device'), (c, [pv, device]) => c.stageVolume(pv!, resolve(device!)));
  withVolumeControl(volume.command('attach <pv> <pair>').description("put the primary pair's export under the volume, live"), (c, [pv, pair]) => c.attachVolume(pv!, pair!));
  withVolumeControl(volume.command('detach <pv>').description('take the export out of the data path, live'), (c, [pv]) => c.detachVolume(pv!));
  withVolumeControl(volume.command('unstage <pv>').description('remove /dev/mapper/blockmirror-<pv> (detached volumes only)'), async (c, [pv]) => {
    await c.unstageVolume(pv!);
    return null;
  });
  withVolumeControl(volume.command('list').description('list the staged volumes'), (c) => c.listVolumes());
  withVolumeControl(
    volume.command('fences').description("list the node's fences of secondary volumes, and what its CSI proxy holds of each (the operator registers them)"),
    (c) => c.listFencedVolumes(),
  );
  addKubeletRegistrationOptions(
    program
      .command('csi-lab-driver')
      .description('run the lab CSI driver (image files on loop devices; for the lab, the demo and tests, not production)')
      .requiredOption('--endpoint <unix:///path>', 'CSI socket to serve (controller, node and identity)')
      .requiredOption('--data-dir <dir>', 'directory for the volume images')
      .option('--node-id <id>', 'node id reported by NodeGetInfo', hostname())
      .option('--driver-name <name>', 'driver name reported by GetPluginInfo', LAB_DRIVER_NAME),
  )
    .addOption(csiProtoDirOption())
    .addOption(logLevelOption())
    .action(async (opts: { endpoint: string; dataDir: string; nodeId: string; driverName: string; csiProtoDir?: string; logLevel: string } & KubeletRegistrationFlags) => {
      const logger = await createLogger(opts.logLevel);
      const registration =
        opts.registrationDir === undefined
          ? undefined
          : {
              proto: await pluginRegistrationProto(opts.pluginRegistrationProtoDir),
              dir: resolve(opts.registrationDir),
              ...(opts.kubeletRegistrationPath !== undefined ? { kubeletEndpoint: opts.kubeletRegistrationPath } : {}),
            };
      const { LabDriver } = await import('../csi/lab-driver/lab-driver.js');
      const driver = await LabDriver.start({
        csi: await csiProto(opts.csiProtoDir),
        endpoint: opts.endpoint,
        dataDir: resolve(opts.dataDir),
        nodeId: opts.nodeId,
        name: opts.driverName,
        ...(registration !== undefined ? { registration } : {}),
        logger,
      });
      await untilSignal(logger, () => driver.stop());
      await exitAfterLogs(logger);
    });

  addKubeletRegistrationOptions(
    addTlsOptions(
      program
        .command('csi-proxy')
        .description("serve CSI on the kubelet's socket in front of a CSI driver's; volumes that opt in (volume_context blockmirror.io/replicate: \"true\") get the device-mapper layer")
        .requiredOption('--endpoint <unix:///path>', 'CSI socket to serve (the one the kubelet is registered with)')
        .requiredOption('--driver <unix:///path>', "the CSI driver's own socket")
        .requiredOption('--state-dir <dir>', 'records of opted-in volumes and the private paths the driver stages them at (the driver must see the same paths)')
        .option('--splice-control <address>', "control address of this node's sidecar, which stages opted-in volumes and keeps the fences of secondary volumes: unix:///path (its control socket) or host:port (without it opted-in volumes are refused and no volume is fenced)")
        .option('--driver-name <name>', 'the CSI driver name to register with the kubelet in the driver\'s place (with --registration-dir)')
        .option('--call-timeout <ms>', "deadline of the proxy's own driver calls when the kubelet set none", positiveInt, 120_000)
        .addOption(csiProtoDirOption())
        .addOption(logLevelOption()),
    ),
  ).action(async (opts: { endpoint: string; driver: string; stateDir: string; spliceControl?: string; driverName?: string; callTimeout: number; csiProtoDir?: string; logLevel: string } & TlsFlags & KubeletRegistrationFlags) => {
    const logger = await createLogger(opts.logLevel);
    if ((opts.registrationDir === undefined) !== (opts.driverName === undefined)) throw new CommanderArgError('--registration-dir and --driver-name go together');
    const tls = tlsFilesFrom(opts);
    const control = opts.spliceControl === undefined ? null : new ControlClient(opts.spliceControl, { timeoutMs: opts.callTimeout, spliceTimeoutMs: opts.callTimeout, ...(tls ? { tls } : {}) });
    const [{ NodeProxy }, { ControlSplicer }, { ControlFences }, { ProxyRegistration }] = await Promise.all([
      import('../csi/node-proxy.js'),
      import('../csi/control-splicer.js'),
      import('../csi/control-fences.js'),
      import('../csi/proxy-registration.js'),
    ]);
    const proxy = await NodeProxy.start({
      csi: await csiProto(opts.csiProtoDir),
      endpoint: opts.endpoint,
      driver: opts.driver,
      stateDir: resolve(opts.stateDir),
      // The same sidecar keeps the node's fences of secondary volumes.
      ...(control !== null ? { splicer: new ControlSplicer(control), fences: new ControlFences(control) } : {}),
      callTimeoutMs: opts.callTimeout,
      logger,
    });
    // Registered only once the proxy serves: the kubelet calls NodeGetInfo at once.
    const registration =
      opts.registrationDir === undefined || opts.driverName === undefined
        ? null
        : await ProxyRegistration.start({
            proto: await pluginRegistrationProto(opts.pluginRegistrationProtoDir),
            registrationDir: resolve(opts.registrationDir),
            driverName: opts.driverName,
            endpoint: opts.kubeletRegistrationPath ?? opts.endpoint,
            logger,
          });
    await untilSignal(logger, async () => {
      // Deregistered first: the kubelet stops sending calls to a socket about to close.
      await registration?.stop();
      await proxy.stop();
    });
    control?.close();
    await exitAfterLogs(logger);
  });

  program
    .command('csi-call <endpoint> <method>')
    .description('call one CSI method (e.g. NodeStageVolume) on a CSI socket and print the response as JSON')
    .option('--json <request>', 'the request as JSON: camelCase fields, enums by name', '{}')
    .option('--expect-code <code>', 'succeed only if the call fails with this gRPC status (e.g. FAILED_PRECONDITION); print it')
    .option('--timeout <ms>', 'deadline of the call', positiveInt, 30_000)
    .addOption(csiProtoDirOption())
    .action(async (endpoint: string, method: string, opts: { json: string; expectCode?: string; timeout: number; csiProtoDir?: string }) => {
      let request: unknown;
      try {
        request = JSON.parse(opts.json);
      } catch (err) {
        throw new Error(`--json: ${(err as Error).message}`, { cause: err });
      }
      if (typeof request !== 'object' || request === null || Array.isArray(request)) throw new Error('--json must be a JSON object');
      const csi = await csiProto(opts.csiProtoDir);
      const { csiCall } = await import('../csi/csi-call.js');
      const r = await csiCall(csi.definition, endpoint, method, request, { timeoutMs: opts.timeout });
      if (r.ok) {
        if (opts.expectCode !== undefined) throw new Error(`${method} succeeded; expected ${opts.expectCode}`);
        process.stdout.write(JSON.stringify(r.response, null, 2) + '\n');
      } else if (opts.expectCode !== undefined && r.code === opts.expectCode.toUpperCase()) {
        process.stdout.write(JSON.stringify({ code: r.code, details: r.details }) + '\n');
      } else {
        throw new Error(`${method}: ${r.code}: ${r.details}`);
      }
    });

  const pair = program.command('pair').description('manage replication pairs on a sidecar');
  const withControl = (cmd: Command): Command =>
    addTlsOptions(cmd.option('--control <address>', "the sidecar's control address: host:port, or unix:///path for its control socket (no TLS)", '127.0.0.1:7400').option('--timeout <ms>', 'deadline of the call', positiveInt, 10_000));
  const client = (opts: { control: string; timeout: number } & TlsFlags): ControlClient =>
    new ControlClient(opts.control, { tls: tlsFilesFrom(opts), timeoutMs: opts.timeout });
  type CtlOpts = { control: string; timeout: number; output?: string } & TlsFlags;
  const outputOption = (): Option => new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text');

  withControl(
    pair
      .command('create <name>')
      .description('create a pair on the sidecar')
      .requiredOption('--volume <path>', 'volume: a regular file or a block device')
      .addOption(new Option('--role <role>', 'role of this side').choices(['primary', 'secondary']).makeOptionMandatory())
      .addOption(new Option('--mode <mode>', 'replication mode').choices(['sync', 'async']).default('sync'))
      .option('--peer <host:port>', "the remote sidecar's peer address: a primary dials it; a secondary tells it when it is ready, and dials it once promoted")
      .option('--nbd-listen <host:port>', 'serve the volume over NBD on this loopback address')
      .option('--nbd-socket <name|path>', "serve the volume over NBD on this Unix socket: a bare name goes in the sidecar's run directory (--run-dir), a path must be in it")
      .option('--block-size <bytes>', 'dirty-tracking granularity (power of two, 4096-1048576)', positiveInt)
      .option('--peer-pair <name>', "the pair's name on the remote sidecar (default: the same)")
      .option('--write-timeout-ms <ms>', 'sync mode: mark a write out of sync when the secondary has not acknowledged it within this', positiveInt)
      .option('--resync-rate <bytes-per-second>', 'cap on resync bandwidth', positiveInt)
      .option('--group-interval-ms <ms>', 'async mode: time between consistency groups (0: back to back)', nonNegativeInt)
      .option('--max-coordination-ms <ms>', 'async mode: longest hold of write acknowledgements at a group cut (default 50)', positiveInt)
      .option('--max-drain-ms <ms>', 'async mode: abandon and retry a group draining longer (default 30000)', positiveInt)
      .option('--consistency-group <name>', 'async mode: pairs with the same name form their groups together')
      .option('--peer-tls-cert <file>', "this pair's own peer TLS: certificate (PEM) a primary presents to the remote site")
      .option('--peer-tls-key <file>', "this pair's own peer TLS: its private key (PEM)")
      .option('--peer-tls-ca <file>', "this pair's own peer TLS: the remote site's CA (PEM); a secondary's peer port trusts it too")
      .option('--remote-identity <uri>', "the remote site's peer identity (spiffe://blockmirror/<site>/peer): a secondary accepts a primary presenting only it, a primary dials only it (default: the sidecar's --remote-peer-identity)")
      .option('--lineage <json>', 'continue the data lineage recorded for this volume when its earlier pair was deleted (the `lineage` of `pair status -o json`, or @FILE holding it)')
      .addOption(outputOption()),
  ).action(async (name: string, opts: CtlOpts & { lineage?: string; volume: string; role: string; mode: string; peer?: string; nbdListen?: string; nbdSocket?: string; blockSize?: number; peerPair?: string; writeTimeoutMs?: number; resyncRate?: number; groupIntervalMs?: number; maxCoordinationMs?: number; maxDrainMs?: number; consistencyGroup?: string; peerTlsCert?: string; peerTlsKey?: string; peerTlsCa?: string; remoteIdentity?: string }) => {
    const peerTls = peerTlsFiles(opts);
    const lineage = opts.lineage === undefined ? undefined : parseLineageRecord(opts.lineage.startsWith('@') ? await readFile(opts.lineage.slice(1), 'utf8') : opts.lineage);
    const c = client(opts);
    try {
      const p = await c.createPair({
        name,
        // Paths are the caller's; the sidecar runs elsewhere, so send them absolute.
        volumePath: resolve(opts.volume),
        role: opts.role === 'primary' ? 'ROLE_PRIMARY' : 'ROLE_SECONDARY',
        mode: opts.mode === 'async' ? 'MODE_ASYNC' : 'MODE_SYNC',
        peerAddress: opts.peer ?? '',
        nbdListen: opts.nbdListen ?? '',
        nbdSocket: socketArg(opts.nbdSocket),
        blockSize: opts.blockSize ?? 0,
        peerPair: opts.peerPair ?? '',
        writeTimeoutMs: opts.writeTimeoutMs ?? 0,
        resyncBytesPerSecond: opts.resyncRate ?? 0,
        groupIntervalMs: opts.groupIntervalMs ?? 0,
        maxCoordinationMs: opts.maxCoordinationMs ?? 0,
        maxDrainMs: opts.maxDrainMs ?? 0,
        consistencyGroup: opts.consistencyGroup ?? '',
        remoteIdentity: opts.remoteIdentity ?? '',
        ...(peerTls ? { peerTls: readPeerTlsPem(peerTls) } : {}),
        ...(lineage ? { lineage: lineageToProto(lineage) } : {}),
      });
      print(opts.output, pairToJson(p), formatPair(p));
    } finally {
      c.close();
    }
  });

  withControl(pair.command('status <name>').description("show a pair's state").addOption(outputOption())).action(async (name: string, opts: CtlOpts) => {
    const c = client(opts);
    try {
      const p = await c.getPair(name);
      print(opts.output, pairToJson(p), formatPair(p));
    } finally {
      c.close();
    }
  });

  withControl(pair.command('list').description('list the pairs').addOption(outputOption())).action(async (opts: CtlOpts) => {
    const c = client(opts);
    try {
      const pairs = await c.listPairs();
      print(opts.output, pairs.map(pairToJson), formatPairList(pairs));
    } finally {
      c.close();
    }
  });

  withControl(pair.command('delete <name>').description("stop replicating and forget the pair (the volume is kept); prints the lineage its volume holds, for the next pair's --lineage").addOption(outputOption())).action(async (name: string, opts: CtlOpts) => {
    const c = client(opts);
    try {
      const lineage = await c.deletePair(name);
      const text = lineage ? `pair ${name} deleted; to continue its volume's data lineage, create the next pair over it with --lineage '${JSON.stringify(lineage)}'\n` : `pair ${name} deleted (its volume held no complete image: no lineage to continue)\n`;
      print(opts.output, { name, lineage }, text);
    } finally {
      c.close();
    }
  });

  withControl(
    pair
      .command('demote <name>')
      .description('make a primary a secondary: its export refuses writes at once, everything is shipped to the secondary (which is told), then the role changes')
      .option('--force', 'do not wait for the secondary: what is not shipped stays in the dirty log (promoting the secondary then discards it)')
      .option('--wait-ms <ms>', 'longest wait for everything to be shipped', positiveInt, DEFAULT_DEMOTE_TIMEOUT_MS)
      .addOption(outputOption()),
  ).action(async (name: string, opts: CtlOpts & { force?: boolean; waitMs: number }) => {
    const c = new ControlClient(opts.control, { tls: tlsFilesFrom(opts), timeoutMs: opts.timeout });
    try {
      const p = await c.demotePair(name, { force: opts.force === true, timeoutMs: opts.waitMs });
      print(opts.output, pairToJson(p), formatPair(p));
    } finally {
      c.close();
    }
  });

  withControl(
    pair
      .command('promote <name>')
      .description('make a secondary a primary: a new data generation, its own writes tracked from now on (refused while its primary has not demoted, unless --force)')
      .option('--force', 'the old primary is unreachable: promote at the last point this side holds (what the old primary acknowledged after it is discarded when it returns)')
      .option('--peer <host:port>', "the old primary's peer address, which this side now replicates to (default: the pair's)")
      .option('--peer-pair <name>', "the pair's name on the old primary's sidecar")
      .option('--nbd-listen <host:port>', 'serve the volume over NBD on this loopback address')
      .option('--nbd-socket <name|path>', "serve the volume over NBD on this Unix socket: a bare name goes in the sidecar's run directory (--run-dir), a path must be in it")
      .addOption(outputOption()),
  ).action(async (name: string, opts: CtlOpts & { force?: boolean; peer?: string; peerPair?: string; nbdListen?: string; nbdSocket?: string }) => {
    const c = client(opts);
    try {
      const p = await c.promotePair({
        name,
        force: opts.force === true,
        peerAddress: opts.peer ?? '',
        peerPair: opts.peerPair ?? '',
        nbdListen: opts.nbdListen ?? '',
        nbdSocket: socketArg(opts.nbdSocket),
      });
      print(opts.output, pairToJson(p), formatPair(p));
    } finally {
      c.close();
    }
  });

  withControl(
    pair
      .command('discard-my-data <name>')
      .description("resolve a split brain: this side's changes lose — a primary is demoted at once, and the peer's data overwrites this side at the next session")
      .addOption(outputOption()),
  ).action(async (name: string, opts: CtlOpts) => {
    const c = client(opts);
    try {
      const p = await c.discardMyData(name);
      print(opts.output, pairToJson(p), formatPair(p));
    } finally {
      c.close();
    }
  });

  for (const [verb, desc] of [
    ['pause', 'pause replication (writes stay tracked)'],
    ['resume', 'resume replication'],
  ] as const) {
    withControl(pair.command(`${verb} <name>`).description(desc).addOption(outputOption())).action(async (name: string, opts: CtlOpts) => {
      const c = client(opts);
      try {
        const p = verb === 'pause' ? await c.pausePair(name) : await c.resumePair(name);
        print(opts.output, pairToJson(p), formatPair(p));
      } finally {
        c.close();
      }
    });
  }
  return program;
}

type VolumeCall = (c: ControlClient, args: string[]) => Promise<unknown>;

/** A `volume` subcommand: one control call, its answer printed as JSON. */
function withVolumeControl(cmd: Command, call: VolumeCall): void {
  addTlsOptions(cmd.option('--control <address>', "the sidecar's control address: host:port, or unix:///path for its control socket (no TLS)", '127.0.0.1:7400').option('--timeout <ms>', 'deadline of the call', positiveInt, 60_000)).action(async (...args: unknown[]) => {
    const opts = args.at(-2) as { control: string; timeout: number } & TlsFlags;
    const c = new ControlClient(opts.control, { tls: tlsFilesFrom(opts), timeoutMs: opts.timeout, spliceTimeoutMs: opts.timeout });
    try {
      const res = await call(c, args.slice(0, -2) as string[]);
      if (res !== null) process.stdout.write(JSON.stringify(res, null, 2) + '\n');
    } finally {
      c.close();
    }
  });
}

/**
 * --nbd-socket as the sidecar takes it: a bare name is placed in the sidecar's run
 * directory (it knows where that is); a path is the caller's, made absolute.
 */
function socketArg(value: string | undefined): string {
  if (value === undefined || value === '') return '';
  return value.includes('/') ? resolve(value) : value;
}

function print(format: string | undefined, json: unknown, text: string): void {
  process.stdout.write(format === 'json' ? JSON.stringify(json, null, 2) + '\n' : text);
}

/** --peer-tls-cert, --peer-tls-key and --peer-tls-ca: all three or none. */
function peerTlsFiles(opts: { peerTlsCert?: string; peerTlsKey?: string; peerTlsCa?: string }): TlsFiles | undefined {
  const given = [opts.peerTlsCert, opts.peerTlsKey, opts.peerTlsCa].filter((v) => v !== undefined && v !== '');
  if (given.length === 0) return undefined;
  if (given.length !== 3) throw new InvalidArgumentError('--peer-tls-cert, --peer-tls-key and --peer-tls-ca go together');
  return { cert: opts.peerTlsCert!, key: opts.peerTlsKey!, ca: opts.peerTlsCa! };
}

/** A pair's peer TLS files as the control API carries them (PEM text). */
function readPeerTlsPem(files: TlsFiles): { certPem: string; keyPem: string; caPem: string } {
  const m = readTlsMaterial(files);
  return { certPem: m.cert.toString('utf8'), keyPem: m.key.toString('utf8'), caPem: m.ca.toString('utf8') };
}
