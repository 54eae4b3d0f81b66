import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClusterSite } from './cluster-site.js';
import { run, runOk } from './run-cli.js';
import { REPO_ROOT } from './sidecar-process.js';

const SITE_CSI_SCRIPT = join(REPO_ROOT, 'hack', 'site-csi.sh');

/** What hack/site-csi.sh writes to DIR/lab-csi/lab-csi.json. */
export interface SiteCsiInfo {
  driver: string;
  storageClass: string;
  namespace: string;
  /** The driver's CSI socket, which the kubelet and external-provisioner call. */
  socket: string;
  /** The driver's socket in the kubelet's plugin registration directory. */
  registrationSocket: string;
  /** Where the driver keeps its volumes (`volumes/<id>.img`). */
  dataDir: string;
  driverLog: string;
  provisionerLog: string;
}

/** One JSON line of the lab driver's log. */
export interface DriverLogRecord {
  message: string;
  [field: string]: unknown;
}

/**
 * The lab CSI driver deployed on a running site (hack/site-csi.sh): registered with the
 * kubelet, external-provisioner in front of its controller, a CSIDriver and a StorageClass.
 */
export class SiteCsi {
  readonly info: SiteCsiInfo;
  /** Progress and phase timing lines `up` printed. */
  readonly upLog: string;

  private constructor(info: SiteCsiInfo, upLog: string) {
    this.info = info;
    this.upLog = upLog;
  }

  /**
   * Deploys on `site` (started with the built CLI this process runs on). Track
   * `SiteCsi.down(site.info.dir)` before calling this: a start that fails half-way is
   * stopped by it too.
   */
  static async up(site: ClusterSite): Promise<SiteCsi> {
    const r = await run('env', [`NODE=${process.execPath}`, 'bash', SITE_CSI_SCRIPT, 'up', site.info.dir], { timeoutMs: 180_000 });
    if (r.code !== 0) throw new Error(`site ${site.name}: hack/site-csi.sh up exited ${r.code}\n${r.stderr}`);
    const info = JSON.parse(await readFile(r.stdout.trim(), 'utf8')) as SiteCsiInfo;
    return new SiteCsi(info, r.stderr);
  }

  /** Stops the driver (it deregisters) and the provisioner; detaches its loop devices. */
  static async down(siteDir: string): Promise<void> {
    await runOk('bash', [SITE_CSI_SCRIPT, 'down', siteDir], { timeoutMs: 60_000 });
  }

  /** The driver's log so far, its JSON lines parsed. */
  async driverLog(): Promise<DriverLogRecord[]> {
    const out: DriverLogRecord[] = [];
    for (const line of (await readFile(this.info.driverLog, 'utf8')).split('\n')) {
      try {
        out.push(JSON.parse(line) as DriverLogRecord);
      } catch {
        // not a JSON line (a Node warning)
      }
    }
    return out;
  }

  /** The driver's log records with this message (and these fields). */
  async logged(message: string, fields: Record<string, unknown> = {}): Promise<DriverLogRecord[]> {
    return (await this.driverLog()).filter((r) => r.message === message && Object.entries(fields).every(([k, v]) => r[k] === v));
  }

  imagePath(volumeId: string): string {
    return join(this.info.dataDir, 'volumes', `${volumeId}.img`);
  }
}
