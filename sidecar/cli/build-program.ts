import { resolve } from 'node:path';
import { Command, InvalidArgumentError as CommanderArgError, Option } from 'commander';
import { createLogger } from '../log/create-logger.js';
import { SidecarDaemon } from '../daemon/sidecar-daemon.js';
import { tlsFilesFrom } from '../grpc/grpc-credentials.js';
import { ControlClient } from '../control/control-client.js';
import { formatPair, formatPairList, pairToJson } from './format-pair.js';

interface TlsFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
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

/** The `blockmirror` command line. */
export function buildProgram(): Command {
  const program = new Command('blockmirror')
    .description('Block-level replication of persistent volumes')
    .showSuggestionAfterError()
    .configureOutput({ outputError: (str, write) => write(str.split('\n').find((l) => l.trim() !== '') + '\n') });

  addTlsOptions(
    program
      .command('sidecar')
      .description('run the sidecar daemon in the foreground')
      .requiredOption('--state-dir <dir>', 'directory for pair definitions and dirty logs')
      .option('--control-listen <host:port>', 'control API address (loopback unless TLS is given)', '127.0.0.1:7400')
      .option('--peer-listen <host:port>', 'peer replication address (loopback unless TLS is given)', '127.0.0.1:7401')
      .option('--metrics-listen <host:port>', 'Prometheus metrics address')
      .addOption(new Option('--log-level <level>', 'log level').choices(['error', 'warn', 'info', 'debug']).default('info')),
  ).action(async (opts: { stateDir: string; controlListen: string; peerListen: string; metricsListen?: string; logLevel: string } & TlsFlags) => {
    const logger = createLogger({ level: opts.logLevel });
    const daemon = await SidecarDaemon.start({
      stateDir: opts.stateDir,
      controlListen: opts.controlListen,
      peerListen: opts.peerListen,
      ...(opts.metricsListen ? { metricsListen: opts.metricsListen } : {}),
      tls: tlsFilesFrom(opts),
      logger,
    });
    await new Promise<void>((resolve) => {
      const stop = (signal: string): void => {
        logger.info('signal received', { signal });
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        daemon.stop().then(resolve, (err: Error) => {
          logger.error('shutdown failed', { error: err.message });
          process.exitCode = 1;
          resolve();
        });
      };
      const onTerm = (): void => stop('SIGTERM');
      const onInt = (): void => stop('SIGINT');
      process.on('SIGTERM', onTerm);
      process.on('SIGINT', onInt);
    });
    // Let the logger drain, then leave even if a library holds a handle open.
    await new Promise<void>((resolve) => logger.on('finish', () => resolve()).end());
    process.exit(process.exitCode ?? 0);
  });

  const pair = program.command('pair').description('manage replication pairs on a sidecar');
  const withControl = (cmd: Command): Command =>
    addTlsOptions(cmd.option('--control <host:port>', "the sidecar's control address", '127.0.0.1:7400').option('--timeout <ms>', 'deadline of the call', positiveInt, 10_000));
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
      .option('--peer <host:port>', "the remote sidecar's peer address")
      .option('--nbd-listen <host:port>', 'serve the volume over NBD on this loopback address')
      .option('--nbd-socket <path>', 'serve the volume over NBD on this Unix socket')
      .option('--block-size <bytes>', 'dirty-tracking granularity (power of two, 4096-1048576)', positiveInt)
      .option('--peer-pair <name>', "the pair's name on the remote sidecar (default: the same)")
      .option('--write-timeout-ms <ms>', 'sync mode: mark a write out of sync when the secondary has not acknowledged it within this', positiveInt)
      .option('--resync-rate <bytes-per-second>', 'cap on resync bandwidth', positiveInt)
      .option('--group-interval-ms <ms>', 'async mode: time between consistency groups (0: back to back)', nonNegativeInt)
      .option('--max-coordination-ms <ms>', 'async mode: longest hold of write acknowledgements at a group cut (default 50)', positiveInt)
      .option('--max-drain-ms <ms>', 'async mode: abandon and retry a group draining longer (default 30000)', positiveInt)
      .option('--consistency-group <name>', 'async mode: pairs with the same name form their groups together')
      .addOption(outputOption()),
  ).action(async (name: string, opts: CtlOpts & { volume: string; role: string; mode: string; peer?: string; nbdListen?: string; nbdSocket?: string; blockSize?: number; peerPair?: string; writeTimeoutMs?: number; resyncRate?: number; groupIntervalMs?: number; maxCoordinationMs?: number; maxDrainMs?: number; consistencyGroup?: string }) => {
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
        nbdSocket: opts.nbdSocket ? resolve(opts.nbdSocket) : '',
        blockSize: opts.blockSize ?? 0,
        peerPair: opts.peerPair ?? '',
        writeTimeoutMs: opts.writeTimeoutMs ?? 0,
        resyncBytesPerSecond: opts.resyncRate ?? 0,
        groupIntervalMs: opts.groupIntervalMs ?? 0,
        maxCoordinationMs: opts.maxCoordinationMs ?? 0,
        maxDrainMs: opts.maxDrainMs ?? 0,
        consistencyGroup: opts.consistencyGroup ?? '',
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

  withControl(pair.command('delete <name>').description('stop replicating and forget the pair (the volume is kept)')).action(async (name: string, opts: CtlOpts) => {
    const c = client(opts);
    try {
      await c.deletePair(name);
      process.stdout.write(`pair ${name} deleted\n`);
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

function print(format: string | undefined, json: unknown, text: string): void {
  process.stdout.write(format === 'json' ? JSON.stringify(json, null, 2) + '\n' : text);
}
