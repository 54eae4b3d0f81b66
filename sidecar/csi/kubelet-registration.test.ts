// The registration API as the kubelet's plugin watcher calls it (the real kubelet:
// test/csi-lab-site.test.ts). The client here is generated from the same pinned api.proto.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { credentials } from '@grpc/grpc-js';
import { lstat, mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PluginInfo__Output } from '../../proto/gen/pluginregistration/PluginInfo.js';
import type { RegistrationClient } from '../../proto/gen/pluginregistration/Registration.js';
import { loadPluginRegistrationProto, type PluginRegistrationProto } from '../grpc/load-proto.js';
import { createLogger } from '../log/create-logger.js';
import { KubeletRegistration } from './kubelet-registration.js';
import { resolvePluginRegistrationProtoDir } from './resolve-plugin-registration-proto-dir.js';

const logger = createLogger({ level: 'error' });

describe('KubeletRegistration', () => {
  let dir: string;
  let proto: PluginRegistrationProto;

  beforeAll(async () => {
    proto = loadPluginRegistrationProto(await resolvePluginRegistrationProtoDir());
    dir = await mkdtemp(join(tmpdir(), 'bm-kubelet-reg-'));
    await mkdir(join(dir, 'plugins_registry'));
  });

  afterAll(() => rm(dir, { recursive: true, force: true }));

  function kubelet(socket: string): RegistrationClient {
    return new proto.pluginregistration.Registration(`unix://${socket}`, credentials.createInsecure());
  }

  const call = <T>(fn: (cb: (err: Error | null, res?: T) => void) => void): Promise<T> =>
    new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res!))));

  it('answers GetInfo with the driver, its endpoint as a bare path and its versions; records the status; removes its socket on stop', async () => {
    const reg = await KubeletRegistration.start({ proto, registrationDir: join(dir, 'plugins_registry'), driverName: 'lab.csi.example.io', endpoint: 'unix:///var/lib/kubelet/plugins/lab/csi.sock', logger });
    expect(reg.socketPath).toBe(join(dir, 'plugins_registry', 'lab.csi.example.io-reg.sock'));
    const client = kubelet(reg.socketPath);
    try {
      const info = await call<PluginInfo__Output>((cb) => client.GetInfo({}, { deadline: Date.now() + 5000 }, cb));
      expect(info).toEqual({ type: 'CSIPlugin', name: 'lab.csi.example.io', endpoint: '/var/lib/kubelet/plugins/lab/csi.sock', supportedVersions: ['1.0.0'] });
      expect(reg.status).toBeUndefined();
      const notified = reg.notified();
      await call((cb) => client.NotifyRegistrationStatus({ pluginRegistered: false, error: 'validation failed' }, { deadline: Date.now() + 5000 }, cb));
      expect(await notified).toMatchObject({ registered: false, error: 'validation failed' });
      await call((cb) => client.NotifyRegistrationStatus({ pluginRegistered: true }, { deadline: Date.now() + 5000 }, cb));
      expect(reg.status).toMatchObject({ registered: true, error: '' });
    } finally {
      client.close();
    }
    await reg.stop();
    await expect(lstat(reg.socketPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('replaces a stale socket, and on stop leaves one another registrar has bound since', async () => {
    const regDir = join(dir, 'plugins_registry');
    const first = await KubeletRegistration.start({ proto, registrationDir: regDir, driverName: 'twice.example.io', endpoint: '/run/a.sock', logger });
    // A second registration of the same name (a restarted driver) takes the path over.
    const second = await KubeletRegistration.start({ proto, registrationDir: regDir, driverName: 'twice.example.io', endpoint: '/run/b.sock', logger });
    await first.stop();
    expect((await lstat(second.socketPath)).isSocket()).toBe(true);
    const client = kubelet(second.socketPath);
    try {
      expect((await call<PluginInfo__Output>((cb) => client.GetInfo({}, cb))).endpoint).toBe('/run/b.sock');
    } finally {
      client.close();
    }
    await second.stop();
    await expect(lstat(second.socketPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a missing registration directory, an odd driver name and no versions', async () => {
    await expect(KubeletRegistration.start({ proto, registrationDir: join(dir, 'nope'), driverName: 'a.example.io', endpoint: '/run/a.sock', logger })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    await expect(KubeletRegistration.start({ proto, registrationDir: dir, driverName: '../escape', endpoint: '/run/a.sock', logger })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(KubeletRegistration.start({ proto, registrationDir: dir, driverName: 'a.example.io', endpoint: 'relative.sock', logger })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(KubeletRegistration.start({ proto, registrationDir: dir, driverName: 'a.example.io', endpoint: '/run/a.sock', supportedVersions: [], logger })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('never removes a file that is not a socket where its socket goes', async () => {
    const path = join(dir, 'plugins_registry', 'file.example.io-reg.sock');
    await writeFile(path, 'not a socket');
    await expect(KubeletRegistration.start({ proto, registrationDir: join(dir, 'plugins_registry'), driverName: 'file.example.io', endpoint: '/run/a.sock', logger })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await readFile(path, 'utf8')).toBe('not a socket');
    await unlink(path);
  });
});
