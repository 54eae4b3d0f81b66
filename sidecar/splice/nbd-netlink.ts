import { runTool } from '../host/run-tool.js';

export interface NbdNetlinkOptions {
  /** The blockmirror-nbd helper (sidecar/native/nbd-netlink). */
  binary: string;
  /** Seconds before a request with no answer is requeued for the next connection. */
  requestTimeoutS: number;
  /** Seconds I/O waits for a reconnect after the connection dies, before it fails. */
  deadConnTimeoutS: number;
}

export interface NbdConnection {
  index: number;
  size: number;
}

/** The kernel's NBD client, driven over netlink by the blockmirror-nbd helper. */
export class NbdNetlink {
  readonly opts: NbdNetlinkOptions;

  constructor(opts: NbdNetlinkOptions) {
    this.opts = opts;
  }

  async connect(socket: string, exportName: string, backend: string): Promise<NbdConnection> {
    const out = await runTool(this.opts.binary, [
      'connect',
      `--socket=${socket}`,
      `--export=${exportName}`,
      `--backend=${backend}`,
      `--timeout=${this.opts.requestTimeoutS}`,
      `--dead-timeout=${this.opts.deadConnTimeoutS}`,
    ]);
    return parseConnection(out);
  }

  /** Hands a device whose connection died a new socket; its waiting I/O goes on. */
  async reconfigure(index: number, socket: string, exportName: string, backend: string): Promise<NbdConnection> {
    return parseConnection(await runTool(this.opts.binary, ['reconfigure', `--index=${index}`, `--socket=${socket}`, `--export=${exportName}`, `--backend=${backend}`]));
  }

  async disconnect(index: number): Promise<void> {
    await runTool(this.opts.binary, ['disconnect', `--index=${index}`]);
  }
}

function parseConnection(out: string): NbdConnection {
  const v = JSON.parse(out) as { index: number; size: number };
  return { index: v.index, size: v.size };
}
