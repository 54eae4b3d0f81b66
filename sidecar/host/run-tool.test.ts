import { describe, expect, it } from '@jest/globals';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTool, ToolError } from './run-tool.js';

describe('runTool', () => {
  it('runs the tool in its own process group, out of reach of a signal to the sidecar\'s group', async () => {
    // $$ of the shell is the tool's pid; its process group is its own.
    const [pid, pgid] = (await runTool('sh', ['-c', 'echo $$ $(ps -o pgid= -p $$)'])).trim().split(/\s+/).map(Number);
    expect(pgid).toBe(pid);
    expect(pgid).not.toBe(Number((await runTool('ps', ['-o', 'pgid=', '-p', String(process.pid)])).trim()));
  });

  it('a failure is a ToolError with the exit code and stderr; a tool that never starts too', async () => {
    const failed = await runTool('sh', ['-c', 'echo bad >&2; exit 3']).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(ToolError);
    expect(failed).toMatchObject({ exitCode: 3, stderr: 'bad\n' });
    await expect(runTool('/nonexistent/tool', [])).rejects.toBeInstanceOf(ToolError);
    await expect(runTool('sleep', ['5'], { timeoutMs: 200 })).rejects.toThrow(/killed by SIGKILL/);
  });

  it('hands the tool descriptors of this process as fd 3 onwards', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bm-run-tool-'));
    try {
      const path = join(dir, 'f');
      writeFileSync(path, 'the opened file');
      const fd = openSync(path, 'r');
      try {
        // Renamed away after opening: the tool still reaches the inode this process holds.
        writeFileSync(`${path}.new`, 'another file');
        rmSync(path);
        writeFileSync(path, 'swapped in');
        expect(await runTool('cat', ['/proc/self/fd/3'], { fds: [fd] })).toBe('the opened file');
      } finally {
        closeSync(fd);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
