import { runTool, ToolError } from '../host/run-tool.js';

export interface DmsetupOptions {
  /** Path of the dmsetup binary. */
  binary?: string;
  signal?: AbortSignal;
}

/**
 * dmsetup, without udev: containers and the test VM have no udev to wait for, so every
 * call passes --noudevsync and the device nodes are made with mknodes.
 */
export class Dmsetup {
  readonly #bin: string;
  readonly #signal: AbortSignal | undefined;

  constructor(opts: DmsetupOptions = {}) {
    this.#bin = opts.binary ?? 'dmsetup';
    this.#signal = opts.signal;
  }

  #run(args: string[]): Promise<string> {
    return runTool(this.#bin, args, this.#signal ? { signal: this.#signal } : {});
  }

  async exists(name: string): Promise<boolean> {
    try {
      await this.#run(['info', name]);
      return true;
    } catch (err) {
      if (err instanceof ToolError && /No such device|not exist/i.test(err.stderr)) return false;
      throw err;
    }
  }

  /**
   * Every device's open count (`dmsetup info -c`: one call for all of them), by name: how
   * many openers — a mounted filesystem, a process holding the device — it has now.
   */
  async openCounts(): Promise<Map<string, number>> {
    const out = await this.#run(['info', '-c', '--noheadings', '--separator', ':', '-o', 'name,open']);
    const counts = new Map<string, number>();
    // "No devices found" when there is none: no line has the separator.
    for (const line of out.split('\n')) {
      const m = /^(.+):(\d+)$/.exec(line.trim());
      if (m) counts.set(m[1]!, Number(m[2]));
    }
    return counts;
  }

  async create(name: string, table: string): Promise<void> {
    await this.#run(['--noudevsync', 'create', name, '--table', table]);
    await this.#run(['mknodes', name]);
  }

  async table(name: string): Promise<string> {
    return (await this.#run(['table', name])).trim();
  }

  /**
   * Replaces the live table. `noflush`: I/O queued inside the old table (a multipath
   * with no usable path) stays queued and is issued to the new one, instead of the
   * suspend waiting for it forever. `whileSuspended` runs between the suspend and the
   * reload.
   */
  async swap(name: string, table: string, opts: { noflush?: boolean; whileSuspended?: () => Promise<void> } = {}): Promise<void> {
    await this.#run(['--noudevsync', 'suspend', ...(opts.noflush ? ['--noflush'] : []), name]);
    try {
      // Runs with no I/O passing the device: neither the old path nor the new one.
      await opts.whileSuspended?.();
      await this.#run(['--noudevsync', 'reload', name, '--table', table]);
    } finally {
      // Resumed even when the reload failed: a device left suspended stalls its users.
      await this.#run(['--noudevsync', 'resume', name]);
    }
  }

  async remove(name: string): Promise<void> {
    if (await this.exists(name)) await this.#run(['--noudevsync', 'remove', name]);
    // Without udev nothing else deletes the /dev/mapper node of a removed device.
    await this.#run(['mknodes', name]);
  }

  /** `dmsetup version`: fails unless the kernel's device-mapper answers. */
  version(): Promise<string> {
    return this.#run(['version']);
  }

  /** `dmsetup targets`: the targets the kernel has loaded, one per line. */
  targets(): Promise<string> {
    return this.#run(['targets']);
  }

  async message(name: string, text: string): Promise<void> {
    await this.#run(['message', name, '0', text]);
  }
}
