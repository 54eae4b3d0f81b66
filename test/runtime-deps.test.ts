import { afterAll, describe, expect, it } from '@jest/globals';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, runOk } from './helpers/run-cli.js';
import { REPO_ROOT } from './helpers/sidecar-process.js';

// The images' final stage holds dist/, proto/ and production dependencies only (the
// Dockerfile prunes dev dependencies). Rebuild that layout without a container runtime
// and load every runtime module from it: a module that needs a dev dependency fails here.

let dir: string | undefined;
afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function jsFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.js') && !e.name.endsWith('.test.js')).map((e) => join(e.parentPath, e.name));
}

describe('the runtime image layout (production dependencies only)', () => {
  it('loads every operator and sidecar module, and runs both commands', async () => {
    dir = await mkdtemp(join(tmpdir(), 'bm-runtime-'));
    for (const f of ['package.json', 'package-lock.json']) await cp(join(REPO_ROOT, f), join(dir, f));
    await runOk('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: dir, timeoutMs: 170_000 });
    // What the Dockerfile copies into the final stage.
    for (const d of ['sidecar', 'operator', 'proto']) await cp(join(REPO_ROOT, 'dist', d), join(dir, 'dist', d), { recursive: true });
    await cp(join(REPO_ROOT, 'proto'), join(dir, 'proto'), { recursive: true });
    expect(await run('node', ['-e', "require.resolve('typescript')"], { cwd: dir })).toMatchObject({ code: 1 });

    // Every module but the CLI entry point, which runs the CLI when imported (run below).
    const modules = [...(await jsFiles(join(dir, 'dist', 'sidecar'))), ...(await jsFiles(join(dir, 'dist', 'operator')))].filter((m) => !m.endsWith(join('cli', 'main.js')));
    expect(modules.length).toBeGreaterThan(40);
    const script = `for (const m of ${JSON.stringify(modules)}) await import(m);`;
    const loaded = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, timeoutMs: 60_000 });
    expect(loaded.stderr).toBe('');
    expect(loaded.code).toBe(0);

    const cli = join(dir, 'dist', 'sidecar', 'cli', 'main.js');
    expect(await runOk(process.execPath, [cli, 'operator', '--help'])).toContain('--no-leader-elect');
    // Without a kubeconfig or a cluster the operator fails on start, but only after
    // loading its Kubernetes client: the error must come from the client, not a missing module.
    const op = await run(process.execPath, [cli, 'operator', '--kubeconfig', join(dir, 'missing.kubeconfig'), '--health-listen', '127.0.0.1:0'], { timeoutMs: 30_000 });
    expect(op.code).not.toBe(0);
    expect(op.stderr + op.stdout).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
  }, 180_000);
});
