// The `blockmirror` command line as a user meets it: the built CLI in dist/, against a
// real sidecar process on loopback.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdTestClient } from './helpers/nbd-test-client.js';
import { runCli, type RunResult } from './helpers/run-cli.js';
import { CLI, SidecarProcess, type PairStatusJson } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait-for.js';

jest.setTimeout(60_000);

const MiB = 1024 * 1024;

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

async function makeVolume(path: string, bytes: number): Promise<void> {
  await writeFile(path, randomBytes(bytes));
}

/** A failed command: non-zero exit, exactly one line on stderr, no stack trace. */
function expectOneLineError(r: RunResult, message: RegExp): void {
  const context = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  expect({ context, failed: r.code !== 0 && r.code !== null }).toEqual({ context, failed: true });
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect({ context, lines: lines.length }).toEqual({ context, lines: 1 });
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/node:internal|\.js:\d+/);
  expect(r.stderr).toMatch(message);
}

function parseJson<T>(r: RunResult): T {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

describe('blockmirror CLI', () => {
  let dir: string;
  let sc: SidecarProcess;
  const cli = (...args: string[]): Promise<RunResult> => runCli([...args, '--control', sc.addresses.control], { timeoutMs: 30_000 });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blockmirror-cli-'));
    sc = await SidecarProcess.start({ stateDir: join(dir, 'state') });
  });

  afterAll(async () => {
    if (sc) await sc.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('prints help and exits 0', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/Usage: blockmirror/);
    expect(top.stdout).toMatch(/sidecar/);
    expect(top.stdout).toMatch(/pair/);
    const create = await runCli(['pair', 'create', '--help']);
    expect(create.code).toBe(0);
    expect(create.stdout).toMatch(/Usage: blockmirror pair create/);
    for (const flag of ['--volume', '--role', '--mode', '--nbd-listen', '--block-size', '--control']) expect(create.stdout).toContain(flag);
  });

  it('creates, shows, lists, pauses, resumes and deletes a pair; the volume is untouched', async () => {
    const volume = join(dir, 'life.img');
    await makeVolume(volume, 8 * MiB);
    const before = await sha256(volume);

    const created = await cli('pair', 'create', 'life', '--volume', volume, '--role', 'primary', '--block-size', '4096');
    expect(created.code).toBe(0);
    expect(created.stderr).toBe('');
    expect(created.stdout).toMatch(/^Name:\s+life$/m);
    expect(created.stdout).toMatch(/^State:\s+Standalone$/m);

    const text = await cli('pair', 'status', 'life');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^Name:\s+life$/m);
    expect(text.stdout).toMatch(/^Role:\s+primary$/m);
    expect(text.stdout).toMatch(/^Mode:\s+sync$/m);
    expect(text.stdout).toMatch(/^State:\s+Standalone$/m);
    expect(text.stdout).toMatch(/^Volume:\s+\S*life\.img \(8\.00 MiB\)$/m);
    expect(text.stdout).toMatch(/^Block size:\s+4\.00 KiB$/m);
    expect(text.stdout).toMatch(/^Out of sync:\s+0 B/m);

    const json = parseJson<PairStatusJson>(await cli('pair', 'status', 'life', '-o', 'json'));
    expect(json).toMatchObject({ name: 'life', role: 'primary', mode: 'sync', state: 'Standalone', volumePath: volume, volumeBytes: 8 * MiB, blockSize: 4096, outOfSyncBytes: 0 });

    // A second pair, async, default block size.
    const other = join(dir, 'other.img');
    await makeVolume(other, 4 * MiB);
    expect((await cli('pair', 'create', 'other', '--volume', other, '--role', 'primary', '--mode', 'async')).code).toBe(0);
    const otherJson = parseJson<PairStatusJson>(await cli('pair', 'status', 'other', '--output', 'json'));
    expect(otherJson).toMatchObject({ name: 'other', mode: 'async', blockSize: 65536, volumeBytes: 4 * MiB, state: 'Standalone' });

    const list = await cli('pair', 'list');
    expect(list.code).toBe(0);
    const rows = list.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^NAME\s+ROLE\s+MODE\s+STATE\s+OUT-OF-SYNC\s+VOLUME$/);
    expect(rows.slice(1).map((r) => r.split(/\s+/)[0])).toEqual(['life', 'other']);
    expect(rows[1]).toMatch(/^life\s+primary\s+sync\s+Standalone\s+0 B\s+\S*life\.img$/);
    const listJson = parseJson<PairStatusJson[]>(await cli('pair', 'list', '-o', 'json'));
    expect(listJson.map((p) => [p.name, p.state])).toEqual([
      ['life', 'Standalone'],
      ['other', 'Standalone'],
    ]);

    const paused = parseJson<PairStatusJson>(await cli('pair', 'pause', 'life', '-o', 'json'));
    expect(paused.state).toBe('Paused');
    expect(parseJson<PairStatusJson>(await cli('pair', 'status', 'life', '-o', 'json')).state).toBe('Paused');
    expect((await cli('pair', 'status', 'life')).stdout).toMatch(/^State:\s+Paused$/m);
    // Pausing one pair leaves the other alone.
    expect(parseJson<PairStatusJson>(await cli('pair', 'status', 'other', '-o', 'json')).state).toBe('Standalone');

    const resumed = await cli('pair', 'resume', 'life');
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/^State:\s+Standalone$/m);
    expect(parseJson<PairStatusJson>(await cli('pair', 'status', 'life', '-o', 'json')).state).toBe('Standalone');

    const deleted = await cli('pair', 'delete', 'life');
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toMatch(/life/);
    expect(parseJson<PairStatusJson[]>(await cli('pair', 'list', '-o', 'json')).map((p) => p.name)).toEqual(['other']);
    expectOneLineError(await cli('pair', 'status', 'life'), /not found/);
    expect(await sha256(volume)).toBe(before);

    // The volume is free again: a new pair may take it.
    expect((await cli('pair', 'create', 'life2', '--volume', volume, '--role', 'secondary')).code).toBe(0);
    expect(parseJson<PairStatusJson>(await cli('pair', 'status', 'life2', '-o', 'json'))).toMatchObject({ role: 'secondary', nbdAddress: '' });
    expect((await cli('pair', 'delete', 'life2')).code).toBe(0);
    expect((await cli('pair', 'delete', 'other')).code).toBe(0);
    expect(parseJson<PairStatusJson[]>(await cli('pair', 'list', '-o', 'json'))).toEqual([]);
    expect(await sha256(volume)).toBe(before);
  });

  describe('invalid arguments: one line on stderr, non-zero exit, no stack trace', () => {
    let volume: string;
    let taken: string;

    beforeAll(async () => {
      volume = join(dir, 'args.img');
      taken = join(dir, 'taken.img');
      await makeVolume(volume, 1 * MiB);
      await makeVolume(taken, 1 * MiB);
      const r = await cli('pair', 'create', 'taken', '--volume', taken, '--role', 'primary');
      expect(r.code).toBe(0);
    });

    afterAll(async () => {
      await cli('pair', 'delete', 'taken');
    });

    const create = (name: string, ...rest: string[]): string[] => ['pair', 'create', name, ...rest];
    const cases: [string, () => string[], RegExp][] = [
      ['unknown subcommand', () => ['frobnicate'], /unknown command/],
      ['unknown pair subcommand', () => ['pair', 'frobnicate'], /unknown command/],
      ['unknown option', () => ['pair', 'list', '--frobnicate'], /unknown option/],
      ['missing --volume', () => create('x', '--role', 'primary'), /--volume/],
      ['missing --role', () => create('x', '--volume', volume), /--role/],
      ['bad --role', () => create('x', '--volume', volume, '--role', 'leader'), /leader.*primary|primary.*leader/],
      ['bad --mode', () => create('x', '--volume', volume, '--role', 'primary', '--mode', 'semi'), /semi/],
      ['--block-size 1000', () => create('x', '--volume', volume, '--role', 'primary', '--block-size', '1000'), /block size.*power of two/i],
      ['--block-size 3000000', () => create('x', '--volume', volume, '--role', 'primary', '--block-size', '3000000'), /block size.*power of two/i],
      ['--block-size abc', () => create('x', '--volume', volume, '--role', 'primary', '--block-size', 'abc'), /abc.*not a positive integer/],
      ['--block-size -4096', () => create('x', '--volume', volume, '--role', 'primary', '--block-size', '-4096'), /block-size|4096/],
      ['a missing volume file', () => create('x', '--volume', join(dir, 'no-such.img'), '--role', 'primary'), /no-such\.img/],
      ['a bad pair name', () => create('Bad_Name', '--volume', volume, '--role', 'primary'), /pair name/],
      ['a duplicate pair name', () => create('taken', '--volume', volume, '--role', 'primary'), /taken.*already exists/],
      ['the same volume in two pairs', () => create('x', '--volume', taken, '--role', 'primary'), /already belongs to pair taken/],
      ['a secondary with --nbd-listen', () => create('x', '--volume', volume, '--role', 'secondary', '--nbd-listen', '127.0.0.1:0'), /nbd/i],
      ['--nbd-listen on a non-loopback address', () => create('x', '--volume', volume, '--role', 'primary', '--nbd-listen', '0.0.0.0:0'), /loopback/],
      ['--nbd-listen that is not host:port', () => create('x', '--volume', volume, '--role', 'primary', '--nbd-listen', 'nope'), /HOST:PORT/],
      ['pair status of an unknown pair', () => ['pair', 'status', 'ghost'], /ghost.*not found/],
      ['pair delete of an unknown pair', () => ['pair', 'delete', 'ghost'], /ghost.*not found/],
      ['pair pause of an unknown pair', () => ['pair', 'pause', 'ghost'], /ghost.*not found/],
      ['--tls-cert without --tls-key', () => ['pair', 'list', '--tls-cert', join(dir, 'cert.pem')], /--tls-cert.*--tls-key/],
    ];

    it.each(cases)('%s', async (_label, args, message) => {
      const r = await cli(...args());
      expectOneLineError(r, message);
      expect(r.stdout).toBe('');
      // Nothing was created by a refused command.
      expect(parseJson<PairStatusJson[]>(await cli('pair', 'list', '-o', 'json')).map((p) => p.name)).toEqual(['taken']);
    });

    it('a control address with nothing listening fails with one line', async () => {
      const r = await runCli(['pair', 'list', '--control', '127.0.0.1:1', '--timeout', '2000'], { timeoutMs: 30_000 });
      expectOneLineError(r, /127\.0\.0\.1:1|ECONNREFUSED|connect/i);
    });

    it('the sidecar refuses a non-loopback control address without TLS', async () => {
      const state = join(dir, 'refused-state');
      const r = await runCli(['sidecar', '--state-dir', state, '--control-listen', '0.0.0.0:0', '--peer-listen', '127.0.0.1:0'], { timeoutMs: 30_000 });
      expectOneLineError(r, /TLS/);
    });

    it('the sidecar refuses a non-loopback peer address without TLS', async () => {
      const state = join(dir, 'refused-state');
      const r = await runCli(['sidecar', '--state-dir', state, '--control-listen', '127.0.0.1:0', '--peer-listen', '0.0.0.0:0'], { timeoutMs: 30_000 });
      expectOneLineError(r, /TLS/);
    });

    it('the sidecar refuses --tls-cert without --tls-key', async () => {
      const state = join(dir, 'refused-state');
      const r = await runCli(['sidecar', '--state-dir', state, '--control-listen', '127.0.0.1:0', '--peer-listen', '127.0.0.1:0', '--tls-cert', join(dir, 'cert.pem')], { timeoutMs: 30_000 });
      expectOneLineError(r, /--tls-key/);
    });

    it('the sidecar refuses to start without --state-dir', async () => {
      const r = await runCli(['sidecar', '--control-listen', '127.0.0.1:0', '--peer-listen', '127.0.0.1:0'], { timeoutMs: 30_000 });
      expectOneLineError(r, /--state-dir/);
    });
  });
});

describe('blockmirror sidecar restarts', () => {
  let dir: string;
  let sc: SidecarProcess | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blockmirror-cli-restart-'));
  });

  afterAll(async () => {
    await sc?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps pair definitions, the paused flag and the NBD export across a SIGTERM restart', async () => {
    const stateDir = join(dir, 'state');
    const volA = join(dir, 'a.img');
    const volB = join(dir, 'b.img');
    await makeVolume(volA, 16 * MiB);
    await makeVolume(volB, 16 * MiB);
    sc = await SidecarProcess.start({ stateDir });
    await sc.cli('pair', 'create', 'alpha', '--volume', volA, '--role', 'primary', '--nbd-listen', '127.0.0.1:0', '--block-size', '8192');
    await sc.cli('pair', 'create', 'beta', '--volume', volB, '--role', 'primary', '--mode', 'async', '--nbd-listen', '127.0.0.1:0');
    await sc.cli('pair', 'pause', 'beta');

    // Data through NBD before the restart.
    const data = randomBytes(256 * 1024);
    const c = await NbdTestClient.connectExport({ tcp: (await sc.status('alpha')).nbdAddress }, 'alpha');
    expect((await c.write(1 * MiB, data)).error).toBe(0);
    await c.disconnect();
    const dirtyBefore = (await sc.status('alpha')).outOfSyncBytes;
    expect(dirtyBefore).toBeGreaterThan(0);

    const exit = await sc.stop();
    expect(exit).toEqual({ code: 0, signal: null });

    sc = await SidecarProcess.start({ stateDir });
    const list = parseJson<PairStatusJson[]>(await runCli(['pair', 'list', '-o', 'json', '--control', sc.addresses.control]));
    expect(list.map((p) => ({ name: p.name, state: p.state, mode: p.mode, blockSize: p.blockSize }))).toEqual([
      { name: 'alpha', state: 'Standalone', mode: 'sync', blockSize: 8192 },
      { name: 'beta', state: 'Paused', mode: 'async', blockSize: 65536 },
    ]);
    expect((await sc.cli('pair', 'list')).split('\n')[2]).toMatch(/^beta\s+primary\s+async\s+Paused/);
    const alpha = await sc.status('alpha');
    // A clean stop persists the dirty bitmap: nothing written is forgotten.
    expect(alpha.outOfSyncBytes).toBe(dirtyBefore);
    expect(alpha.lastError).toBe('');

    // Both exports serve again (on new kernel-picked ports), with the data intact.
    const again = await NbdTestClient.connectExport({ tcp: alpha.nbdAddress }, 'alpha');
    const r = await again.read(1 * MiB, data.length);
    expect(r.error).toBe(0);
    expect(r.data.equals(data)).toBe(true);
    await again.disconnect();
    const beta = await NbdTestClient.connectExport({ tcp: (await sc.status('beta')).nbdAddress }, 'beta');
    expect(beta.size).toBe(16 * MiB);
    expect((await beta.read(0, 4096)).error).toBe(0);
    await beta.disconnect();

    // Resume after the restart, and the flag sticks through another restart.
    await sc.cli('pair', 'resume', 'beta');
    expect(await sc.stop()).toEqual({ code: 0, signal: null });
    sc = await SidecarProcess.start({ stateDir });
    expect((await sc.status('beta')).state).toBe('Standalone');
    expect(await sc.stop()).toEqual({ code: 0, signal: null });
    sc = undefined;
  });

  it('on SIGTERM exits 0, and everything it printed on stdout is JSON lines', async () => {
    const stateDir = join(dir, 'state-log');
    const vol = join(dir, 'log.img');
    await makeVolume(vol, 4 * MiB);
    const child = spawn(process.execPath, [CLI, 'sidecar', '--state-dir', stateDir, '--control-listen', '127.0.0.1:0', '--peer-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--allow-volume-prefix', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    try {
      const ready = await waitFor('sidecar ready', () => {
        const line = stdout.split('\n').find((l) => l.includes('"sidecar ready"'));
        return line ? (JSON.parse(line) as { control: string }) : undefined;
      });
      // Some activity worth logging.
      expect((await runCli(['pair', 'create', 'logged', '--volume', vol, '--role', 'primary', '--nbd-listen', '127.0.0.1:0', '--control', ready.control])).code).toBe(0);
      const c = await NbdTestClient.open({ tcp: parseJson<PairStatusJson>(await runCli(['pair', 'status', 'logged', '-o', 'json', '--control', ready.control])).nbdAddress });
      await c.readGreeting();
      c.sendClientFlags(0xff);
      await c.closed;
    } finally {
      child.kill('SIGTERM');
    }
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([exited, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no exit after SIGTERM; stdout:\n${stdout}`)), 30_000)))]);
    clearTimeout(timer);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(stderr).toBe('');
    expect(stdout.endsWith('\n')).toBe(true);
    const lines = stdout.split('\n').filter((l) => l !== '');
    const records = lines.map((line) => {
      try {
        return JSON.parse(line) as { level: string; message: string; timestamp: string; signal?: string };
      } catch {
        throw new Error(`not a JSON line: ${line}`);
      }
    });
    for (const r of records) {
      expect(typeof r.level).toBe('string');
      expect(typeof r.message).toBe('string');
      expect(Number.isNaN(Date.parse(r.timestamp))).toBe(false);
    }
    const messages = records.map((r) => r.message);
    expect(messages).toEqual(expect.arrayContaining(['sidecar ready', 'pair created', 'signal received', 'sidecar stopping', 'sidecar stopped']));
    expect(records.find((r) => r.message === 'signal received')!.signal).toBe('SIGTERM');
    expect(messages[messages.length - 1]).toBe('sidecar stopped');
  });
});
