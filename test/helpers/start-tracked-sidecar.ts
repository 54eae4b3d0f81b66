import type { CleanupStack } from './cleanup-stack.js';
import { SidecarProcess } from './sidecar-process.js';

/**
 * A sidecar process the test's cleanup stops: SIGTERM first (a clean stop is part of
 * what is tested), kill -9 when it has not exited within 15 s.
 */
export async function startTrackedSidecar(cleanup: CleanupStack, stateDir: string, args: string[] = []): Promise<SidecarProcess> {
  const sc = await SidecarProcess.start({ stateDir, args });
  cleanup.track(`sidecar pid ${sc.child.pid}`, async () => {
    const exited = await Promise.race([sc.stop(), new Promise<null>((r) => setTimeout(() => r(null), 15_000).unref())]);
    if (exited === null) await sc.kill9();
  });
  return sc;
}
