import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers/run-cli.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { makeTestPki, type TestPki } from './helpers/test-pki.js';

describe('the control API over mutual TLS', () => {
  let dir: string;
  let pki: TestPki;
  let rogue: TestPki;
  let sc: SidecarProcess | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-tls-'));
    pki = await makeTestPki(dir, 'good');
    rogue = await makeTestPki(dir, 'rogue');
    // Bound to every address: allowed only because TLS with client certificates is on.
    sc = await SidecarProcess.start({
      stateDir: join(dir, 'state'),
      args: ['--control-listen', '0.0.0.0:0', '--tls-cert', pki.server.cert, '--tls-key', pki.server.key, '--tls-ca', pki.ca],
    });
  });

  afterAll(async () => {
    await sc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const control = (): string => `127.0.0.1:${sc!.addresses.control.split(':').pop()}`;

  it('serves a client that presents a certificate from the trusted CA', async () => {
    const r = await runCli(['pair', 'list', '-o', 'json', '--control', control(), '--tls-cert', pki.client.cert, '--tls-key', pki.client.key, '--tls-ca', pki.ca]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
  });

  it('refuses a plaintext client', async () => {
    const r = await runCli(['pair', 'list', '--control', control(), '--timeout', '3000']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('refuses a client whose certificate another CA signed', async () => {
    const r = await runCli(['pair', 'list', '--control', control(), '--timeout', '3000', '--tls-cert', rogue.client.cert, '--tls-key', rogue.client.key, '--tls-ca', pki.ca]);
    expect(r.code).not.toBe(0);
  });

  it('refuses to bind a non-loopback address without TLS', async () => {
    const r = await runCli(['sidecar', '--state-dir', join(dir, 'state2'), '--control-listen', '0.0.0.0:0', '--peer-listen', '127.0.0.1:0']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/mutual TLS/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
