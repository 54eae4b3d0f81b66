// The CSI conformance suite of the Kubernetes CSI project (csi-sanity, built by
// hack/install-csi.sh) against the lab driver directly and through the blockmirror CSI
// proxy in front of it. No volume opts in here (no device-mapper on this host): through
// the proxy every call is forwarded, so the driver's results must hold unchanged.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CSI_SANITY, CsiProcess, parseSanitySummary, releaseHostResources } from './helpers/csi-process.js';
import { run } from './helpers/run-cli.js';

describe('csi-sanity v5.6.0', () => {
  let dir: string;
  let driver: CsiProcess | undefined;
  let proxy: CsiProcess | undefined;

  beforeAll(async () => {
    await access(CSI_SANITY).catch(() => {
      throw new Error(`${CSI_SANITY} is missing: run hack/install-csi.sh --csi-sanity`);
    });
    dir = await mkdtemp(join(tmpdir(), 'bm-csi-sanity-'));
    driver = await CsiProcess.start(['csi-lab-driver', '--endpoint', `unix://${dir}/lab.sock`, '--data-dir', join(dir, 'lab'), '--node-id', 'sanity-node'], 'lab CSI driver ready');
    proxy = await CsiProcess.start(['csi-proxy', '--endpoint', `unix://${dir}/proxy.sock`, '--driver', `unix://${dir}/lab.sock`, '--state-dir', join(dir, 'proxy')], 'CSI node proxy ready');
    // StorageClass-like parameters: the opt-in key present but off, and one the driver only carries.
    await writeFile(join(dir, 'parameters.yaml'), 'blockmirror.io/replicate: "false"\nlab.blockmirror.io/tier: test\n');
  });

  afterAll(async () => {
    await proxy?.stop();
    await driver?.stop();
    if (dir !== undefined) {
      await releaseHostResources(dir);
      await rm(dir, { recursive: true, force: true });
    }
  });

  let runs = 0;
  async function sanity(socket: string, accessType: 'mount' | 'block'): Promise<void> {
    const n = runs++;
    const started = Date.now();
    const r = await run(
      CSI_SANITY,
      [
        `--csi.endpoint=unix://${dir}/${socket}`,
        // csi-sanity creates these itself and wants them absent.
        `--csi.stagingdir=${dir}/run-${n}-staging`,
        `--csi.mountdir=${dir}/run-${n}-target`,
        `--csi.testvolumesize=${64 << 20}`,
        `--csi.testvolumeaccesstype=${accessType}`,
        `--csi.testvolumeparameters=${dir}/parameters.yaml`,
        '--ginkgo.no-color',
      ],
      { timeoutMs: 170_000 },
    );
    const summary = parseSanitySummary(r.stdout);
    const context = `${socket} ${accessType}: exit ${r.code} in ${((Date.now() - started) / 1000).toFixed(1)} s\n${r.stdout.slice(-6000)}\n${r.stderr.slice(-2000)}\ndriver log:\n${driver!.log.slice(-20).join('\n')}\nproxy log:\n${proxy!.log.slice(-20).join('\n')}`;
    expect({ context, code: r.code, failed: summary.failed }).toEqual({ context, code: 0, failed: 0 });
    // Identity, controller create/delete/validate and the node stage/publish cycle run; the rest skip as unadvertised.
    expect({ context, passed: summary.passed > 25 }).toEqual({ context, passed: true });
    // Each spec cleans up after itself: no volume, mount or loop device is left behind.
    expect(await readdir(join(dir, 'lab', 'volumes')).catch(() => [])).toEqual([]);
    expect((await readFile('/proc/self/mountinfo', 'utf8')).includes(dir)).toBe(false);
  }

  it('passes against the lab driver, filesystem volumes', () => sanity('lab.sock', 'mount'), 180_000);
  it('passes against the lab driver, block volumes', () => sanity('lab.sock', 'block'), 180_000);
  it('passes through the CSI proxy, filesystem volumes', () => sanity('proxy.sock', 'mount'), 180_000);
  it('passes through the CSI proxy, block volumes', async () => {
    await sanity('proxy.sock', 'block');
    // Nothing opted in: the proxy kept no volume records.
    expect(await readdir(join(dir, 'proxy', 'volumes')).catch(() => [])).toEqual([]);
  }, 180_000);
});
