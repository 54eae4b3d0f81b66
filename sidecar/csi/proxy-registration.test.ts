// The proxy's registration against the driver's own registrar, in a registration
// directory as the kubelet's watcher sees it (the real kubelet: test/chart-csi-proxy.test.ts).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { credentials } from '@grpc/grpc-js';
import { lstat, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PluginInfo__Output } from '../../proto/gen/pluginregistration/PluginInfo.js';
import { loadPluginRegistrationProto, type PluginRegistrationProto } from '../grpc/load-proto.js';
import { createLogger } from '../log/create-logger.js';
import { KubeletRegistration } from './kubelet-registration.js';
import { PROXY_CSI_VERSIONS, ProxyRegistration, proxyRegistrationSocketName } from './proxy-registration.js';
import { resolvePluginRegistrationProtoDir } from './resolve-plugin-registration-proto-dir.js';

const logger = createLogger({ level: 'error' });

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('ProxyRegistration', () => {
  let dir: string;
  let proto: PluginRegistrationProto;

  beforeAll(async () => {
    proto = loadPluginRegistrationProto(await resolvePluginRegistrationProtoDir());
    dir = await mkdtemp(join(tmpdir(), 'bm-proxy-reg-'));
    await mkdir(join(dir, 'plugins_registry'));
  });

  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('offers the pinned CSI spec version, above the 1.0.0 node-driver-registrar offers', async () => {
    const pin = JSON.parse(await readFile(new URL('../../proto/csi-spec.json', import.meta.url), 'utf8')) as { version: string };
    expect(PROXY_CSI_VERSIONS.at(-1)).toBe(pin.version.replace(/^v/, ''));
    expect(PROXY_CSI_VERSIONS).toContain('1.0.0');
  });

  it("registers beside the driver's registrar under its own socket, and registers again (a new socket) once the driver's registration changed and settled", async () => {
    const regDir = join(dir, 'plugins_registry');
    const driverName = 'lab.csi.example.io';
    const own = await KubeletRegistration.start({ proto, registrationDir: regDir, driverName, endpoint: '/run/driver.sock', logger });
    // Another driver's registrar is no rival.
    const other = await KubeletRegistration.start({ proto, registrationDir: regDir, driverName: 'other.example.io', endpoint: '/run/other.sock', logger });
    const proxy = await ProxyRegistration.start({ proto, registrationDir: regDir, driverName, endpoint: '/run/proxy.sock', logger, pollMs: 20, settleMs: 150 });
    try {
      expect(proxy.current.socketPath).toBe(join(regDir, proxyRegistrationSocketName(driverName)));
      expect(own.socketPath).toBe(join(regDir, `${driverName}-reg.sock`));
      const client = new proto.pluginregistration.Registration(`unix://${proxy.current.socketPath}`, credentials.createInsecure());
      const info = await new Promise<PluginInfo__Output>((resolve, reject) => client.GetInfo({}, { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res!))));
      client.close();
      expect(info).toEqual({ type: 'CSIPlugin', name: driverName, endpoint: '/run/proxy.sock', supportedVersions: [...PROXY_CSI_VERSIONS] });
      const firstIno = (await lstat(proxy.current.socketPath)).ino;

      // The driver's own registrar going away: the kubelet then forgets the name.
      await own.stop();
      await until('the proxy to register again', () => proxy.renewals === 1);
      const renewed = await lstat(proxy.current.socketPath);
      expect(renewed.isSocket()).toBe(true);
      expect(renewed.ino).not.toBe(firstIno);

      // The driver's registrar coming back is a change too.
      const back = await KubeletRegistration.start({ proto, registrationDir: regDir, driverName, endpoint: '/run/driver.sock', logger });
      await until('the proxy to register again after the driver came back', () => proxy.renewals === 2);
      await back.stop();
      await until('and after it left again', () => proxy.renewals === 3);
      // Only the driver's own registrations counted (the other driver's stayed throughout).
      expect(proxy.renewals).toBe(3);
    } finally {
      await proxy.stop();
      await other.stop();
    }
    await expect(lstat(join(regDir, proxyRegistrationSocketName(driverName)))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
