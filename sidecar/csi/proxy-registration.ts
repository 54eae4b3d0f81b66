import { credentials } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { PluginInfo__Output } from '../../proto/gen/pluginregistration/PluginInfo.js';
import { KubeletRegistration, type KubeletRegistrationOptions } from './kubelet-registration.js';

/**
 * The CSI versions the proxy offers the kubelet. The kubelet keeps, per driver name, the
 * registration with the highest supported version and refuses a later one that is not
 * strictly higher (pkg/volume/csi/csi_plugin.go, validateVersions). node-driver-registrar
 * always offers 1.0.0; the proxy offers the CSI spec version it is built on (the pinned
 * csi.proto, proto/csi-spec.json), so it wins in whichever order the two register.
 */
export const PROXY_CSI_VERSIONS: readonly string[] = ['1.0.0', '1.13.0'];

export interface ProxyRegistrationOptions extends Omit<KubeletRegistrationOptions, 'supportedVersions' | 'socketName'> {
  /** How often the registration directory is looked at (default 2 s). */
  pollMs?: number;
  /** How long the driver's other registrations must stay unchanged before the proxy registers again (default 5 s). */
  settleMs?: number;
}

/**
 * The registration socket's file name: beside `<driver>-reg.sock`, never in its place.
 * Short, whatever the driver's name: a Unix socket's path has at most 107 bytes, and the
 * kubelet learns the name from GetInfo anyway.
 */
export function proxyRegistrationSocketName(driverName: string): string {
  return `bm-csi-proxy-${createHash('sha256').update(driverName).digest('hex').slice(0, 8)}.sock`;
}

/**
 * Registers the CSI proxy with the kubelet under the wrapped driver's name, and keeps
 * it registered while the driver's own registrar comes and goes.
 *
 * The version rule decides every race between live registrations, but the kubelet
 * forgets a driver by name: when a registration socket it accepted is removed or
 * replaced, it drops the name whatever endpoint was registered last
 * (RegistrationHandler.DeRegisterPlugin, unregisterDriver), and a registrar that comes
 * back then registers the driver's own socket. So the proxy watches the directory for
 * the other sockets that announce its driver's name (GetInfo, as the kubelet asks) and,
 * once they have changed and stayed unchanged for `settleMs` (the kubelet's reconciler
 * runs every second), registers again under a new socket, which the kubelet takes as a
 * new plugin: the name is the proxy's again.
 */
export class ProxyRegistration {
  #current: KubeletRegistration;
  readonly #o: ProxyRegistrationOptions;
  readonly #timer: NodeJS.Timeout;
  /** Other sockets announcing the driver's name, as `path:inode`, sorted; undefined before the first look. */
  #rivals: string | undefined;
  #changedAt: number | null = null;
  /** inode → driver name of the sockets asked already. */
  readonly #names = new Map<string, string>();
  #busy = false;
  #stopped = false;
  #renewals = 0;

  private constructor(current: KubeletRegistration, o: ProxyRegistrationOptions) {
    this.#current = current;
    this.#o = o;
    this.#timer = setInterval(() => void this.#look(), o.pollMs ?? 2000);
    void this.#look();
  }

  static async start(o: ProxyRegistrationOptions): Promise<ProxyRegistration> {
    return new ProxyRegistration(await KubeletRegistration.start(ProxyRegistration.#options(o)), o);
  }

  static #options(o: ProxyRegistrationOptions): KubeletRegistrationOptions {
    return { ...o, supportedVersions: PROXY_CSI_VERSIONS, socketName: proxyRegistrationSocketName(o.driverName) };
  }

  /** The registration in place now. */
  get current(): KubeletRegistration {
    return this.#current;
  }

  /** How many times the proxy registered again after the driver's registrations changed. */
  get renewals(): number {
    return this.#renewals;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#current.stop();
  }

  async #look(): Promise<void> {
    if (this.#busy || this.#stopped) return;
    this.#busy = true;
    try {
      const rivals = await this.#findRivals();
      if (this.#rivals === undefined) {
        // What was there before the proxy registered lost to its version already.
        this.#rivals = rivals;
        return;
      }
      if (rivals !== this.#rivals) {
        this.#o.logger.info("the driver's own registration changed: registering the proxy again once it settles", { driverName: this.#o.driverName, before: this.#rivals, now: rivals });
        this.#rivals = rivals;
        this.#changedAt = performance.now();
        return;
      }
      if (this.#changedAt !== null && performance.now() - this.#changedAt >= (this.#o.settleMs ?? 5000)) {
        this.#changedAt = null;
        await this.#renew();
      }
    } catch (err) {
      this.#o.logger.warn('looking at the kubelet registration directory failed', { error: (err as Error).message });
    } finally {
      this.#busy = false;
    }
  }

  /** A new socket renamed over the proxy's (a new inode: a new plugin for the kubelet), then the old server stopped. */
  async #renew(): Promise<void> {
    const old = this.#current;
    this.#current = await KubeletRegistration.start(ProxyRegistration.#options(this.#o));
    // The path holds the new socket now: the old one's stop leaves it alone.
    await old.stop();
    this.#renewals++;
    this.#o.logger.info('registered with the kubelet again', { driverName: this.#o.driverName, socket: this.#current.socketPath });
  }

  async #findRivals(): Promise<string> {
    const dir = this.#o.registrationDir;
    const found: string[] = [];
    const seen = new Set<string>();
    for (const entry of await readdir(dir)) {
      // The kubelet's watcher skips dot files too (and the proxy's own socket is not a rival).
      if (entry.startsWith('.')) continue;
      const path = join(dir, entry);
      if (path === this.#current.socketPath) continue;
      const st = await lstat(path).catch(() => undefined);
      if (st?.isSocket() !== true) continue;
      const key = `${path}:${st.ino}`;
      seen.add(key);
      let name = this.#names.get(key);
      if (name === undefined) {
        name = await getInfoName(this.#o, path);
        // A socket not answering yet is asked again next time.
        if (name === undefined) continue;
        this.#names.set(key, name);
      }
      if (name === this.#o.driverName) found.push(key);
    }
    for (const key of this.#names.keys()) if (!seen.has(key)) this.#names.delete(key);
    return found.sort().join(' ');
  }
}

/** The driver name a registration socket announces, as the kubelet's watcher asks it; undefined if it does not answer. */
function getInfoName(o: ProxyRegistrationOptions, socket: string): Promise<string | undefined> {
  const client = new o.proto.pluginregistration.Registration(`unix://${socket}`, credentials.createInsecure());
  return new Promise((resolve) => {
    client.GetInfo({}, { deadline: Date.now() + 1000 }, (err: Error | null, info?: PluginInfo__Output) => {
      client.close();
      resolve(err || info === undefined ? undefined : info.name);
    });
  });
}
