import { runTool } from '../../host/run-tool.js';

/**
 * Loop devices over image files (losetup(8)). The kernel is the state: which device
 * backs which image is asked of it each time, so a restarted driver finds its volumes.
 */
export class LoopDevices {
  /** The loop devices backed by `image` (usually none or one). */
  async of(image: string): Promise<string[]> {
    const out = await runTool('losetup', ['--noheadings', '--output', 'NAME', '--associated', image]);
    return out
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
  }

  /** The loop device over `image`, attaching one if there is none. */
  async attach(image: string): Promise<string> {
    const existing = await this.of(image);
    if (existing.length > 0) return existing[0]!;
    return (await runTool('losetup', ['--find', '--show', image])).trim();
  }

  /** Detaches every loop device over `image`. */
  async detach(image: string): Promise<void> {
    for (const dev of await this.of(image)) await runTool('losetup', ['--detach', dev]);
  }
}
