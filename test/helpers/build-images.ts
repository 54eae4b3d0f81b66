import { join } from 'node:path';
import { run } from './run-cli.js';
import { REPO_ROOT } from './sidecar-process.js';

/** One image hack/build-images.sh made: its fully qualified local name and OCI archive. */
export interface BuiltImage {
  image: string;
  archive: string;
}

export interface BuiltImages {
  operator: BuiltImage;
  sidecar: BuiltImage;
  pause: BuiltImage;
}

export interface BuildImagesResult {
  images: BuiltImages;
  /** The script's progress lines (stderr). */
  log: string;
}

/**
 * Runs hack/build-images.sh: builds the chart's images from the Dockerfile (and the pause
 * image) unless its cache already holds them for these inputs, and returns where they are.
 * The test command runs it before the tests, so this is normally warm; cold it takes
 * several minutes.
 */
export async function buildImages(opts: { timeoutMs?: number } = {}): Promise<BuildImagesResult> {
  const r = await run('bash', [join(REPO_ROOT, 'hack', 'build-images.sh')], { timeoutMs: opts.timeoutMs ?? 40 * 60_000 });
  if (r.code !== 0) throw new Error(`hack/build-images.sh exited ${r.code}\n${r.stderr}`);
  return { images: JSON.parse(r.stdout) as BuiltImages, log: r.stderr };
}
