import { describe, expect, it } from '@jest/globals';
import type { LeaseRecord } from '../kube/kube-client.js';
import { SidecarDirectory } from './sidecar-directory.js';
import { CONTROL_ANNOTATION, PEER_ANNOTATION, SPLICE_CAPABLE_LABEL, SPLICE_MISSING_ANNOTATION, spliceLeaseFields } from './sidecar-lease.js';

const HOUR = 3_600_000;
const ENDPOINTS = { [CONTROL_ANNOTATION]: '10.0.0.5:7400', [PEER_ANNOTATION]: '10.0.0.5:7401' };

/** A registration Lease as the sidecar writes it; `renewTime` is the node's clock. */
function lease(resourceVersion: string, renewTime: Date, annotations: Record<string, string> = ENDPOINTS, labels: Record<string, string> = {}): LeaseRecord {
  return { name: 'blockmirror-sidecar-node-a', namespace: 'ns', holder: 'node-a', labels, annotations, leaseDurationSeconds: 40, renewTime, resourceVersion };
}

/**
 * A directory over `leases` (what the API server holds now), on a monotonic clock the
 * test moves. Its origin is arbitrary; here it starts at our wall clock's reading, so a
 * directory that compared renewTime with it would show.
 */
function directory(leases: () => LeaseRecord[], selectors: string[] = []): { d: SidecarDirectory; at: (ms: number) => void } {
  const origin = Date.now();
  let t = origin;
  const d = new SidecarDirectory(
    {
      listLeases: (_ns, selector) => {
        selectors.push(selector);
        return Promise.resolve(leases());
      },
    },
    'ns',
    () => t,
  );
  return { d, at: (ms) => void (t = origin + ms) };
}

const gone = { missing: expect.stringContaining('has not renewed its registration') as unknown as string };

describe('SidecarDirectory', () => {
  it("finds a node's live sidecar by its lease labels", async () => {
    const selectors: string[] = [];
    const { d } = directory(() => [lease('1', new Date())], selectors);
    expect(await d.forNode('node-a')).toMatchObject({ found: { node: 'node-a', control: '10.0.0.5:7400', peer: '10.0.0.5:7401' } });
    expect(selectors).toEqual(['app.kubernetes.io/component=sidecar,blockmirror.io/node=node-a']);
  });

  it('treats a missing or incomplete registration as missing, saying why', async () => {
    expect(await directory(() => []).d.forNode('node-a')).toEqual({ missing: 'no blockmirror sidecar is registered on node node-a' });
    expect(await directory(() => [lease('1', new Date(), {})]).d.forNode('node-a')).toMatchObject({ missing: expect.stringContaining(CONTROL_ANNOTATION) as unknown as string });
  });

  it("ignores a Lease labelled for a node but named for another: only the node's own Lease registers its sidecar", async () => {
    const impostor: LeaseRecord = { ...lease('1', new Date(), { [CONTROL_ANNOTATION]: '10.6.6.6:7400', [PEER_ANNOTATION]: '10.6.6.6:7401' }), name: 'blockmirror-sidecar-node-b' };
    expect(await directory(() => [impostor]).d.forNode('node-a')).toEqual({ missing: 'no blockmirror sidecar is registered on node node-a' });
    expect(await directory(() => [impostor, lease('2', new Date())]).d.forNode('node-a')).toMatchObject({ found: { control: '10.0.0.5:7400' } });
    const all = await directory(() => [{ ...impostor, labels: { 'blockmirror.io/node': 'node-a' } }]).d.all();
    expect([...all.keys()]).toEqual([]);
  });

  it('counts a Lease seen for the first time as fresh, even if its renewTime looks an hour old', async () => {
    // The node's clock runs an hour behind ours.
    const { d } = directory(() => [lease('7', new Date(Date.now() - HOUR))]);
    expect(await d.forNode('node-a')).toMatchObject({ found: { control: '10.0.0.5:7400' } });
  });

  it('keeps a sidecar whose clock runs an hour behind live while its Lease keeps changing', async () => {
    let rv = 1;
    const { d, at } = directory(() => [lease(String(rv), new Date(Date.now() - HOUR))]);
    for (let ms = 0; ms <= 120_000; ms += 10_000) {
      at(ms);
      rv++;
      expect(await d.forNode('node-a')).toMatchObject({ found: { node: 'node-a' } });
    }
  });

  it('counts a sidecar whose clock runs an hour ahead as gone once its Lease has not changed for its duration', async () => {
    const renewed = new Date(Date.now() + HOUR);
    const { d, at } = directory(() => [lease('9', renewed)]);
    expect(await d.forNode('node-a')).toMatchObject({ found: { node: 'node-a' } });
    at(39_000);
    expect(await d.forNode('node-a')).toMatchObject({ found: { node: 'node-a' } });
    at(40_000);
    const r = await d.forNode('node-a');
    expect(r).toMatchObject(gone);
    expect(r).toMatchObject({ missing: expect.stringContaining('for 40 s (lease duration 40 s') as unknown as string });
  });

  it('measures from when a Lease was last seen to change, and forgets a Lease that went away', async () => {
    let current: LeaseRecord[] = [lease('1', new Date())];
    const { d, at } = directory(() => current);
    await d.forNode('node-a');
    at(30_000);
    current = [lease('2', new Date())];
    expect(await d.forNode('node-a')).toMatchObject({ found: { node: 'node-a' } });
    // 40 s after the first sighting, but only 30 s after the change.
    at(60_000);
    expect(await d.forNode('node-a')).toMatchObject({ found: { node: 'node-a' } });
    at(70_000);
    expect(await d.forNode('node-a')).toMatchObject(gone);
    // Unregistered, then registered again: fresh from its new sighting.
    current = [];
    await d.forNode('node-a');
    current = [lease('2', new Date())];
    expect(await d.forNode('node-a')).toMatchObject({ found: { node: 'node-a' } });
  });

  it("reads the node's splice capability from the registration, and trusts none that is not registered", async () => {
    const capable = spliceLeaseFields({ capable: true });
    expect(capable.annotations[SPLICE_MISSING_ANNOTATION]).toBeUndefined();
    expect((await directory(() => [lease('1', new Date(), ENDPOINTS, capable.labels)]).d.forNode('node-a'))).toMatchObject({ found: { splice: { capable: true } } });
    const reason = 'no device-mapper: /dev/mapper/control missing (load dm_mod on the node)';
    const incapable = spliceLeaseFields({ capable: false, reason });
    expect(incapable.labels).toEqual({ [SPLICE_CAPABLE_LABEL]: 'false' });
    const annotations = { ...ENDPOINTS, [SPLICE_MISSING_ANNOTATION]: incapable.annotations[SPLICE_MISSING_ANNOTATION]! };
    expect(await directory(() => [lease('1', new Date(), annotations, incapable.labels)]).d.forNode('node-a')).toMatchObject({ found: { splice: { capable: false, reason } } });
    expect(await directory(() => [lease('1', new Date())]).d.forNode('node-a')).toMatchObject({
      found: { splice: { capable: false, reason: expect.stringContaining(`registers no ${SPLICE_CAPABLE_LABEL} label`) as unknown as string } },
    });
  });

  it("lists every node's sidecar, live or not, by the node label of its registration", async () => {
    const selectors: string[] = [];
    const renewed = new Date();
    const withNode = (node: string, rv: string): LeaseRecord => ({ ...lease(rv, renewed), name: `blockmirror-sidecar-${node}`, holder: node, labels: { 'blockmirror.io/node': node } });
    let leases = [withNode('node-a', '1'), withNode('node-b', '1')];
    const { d, at } = directory(() => leases, selectors);
    const all = await d.all();
    expect([...all.keys()]).toEqual(['node-a', 'node-b']);
    expect(all.get('node-b')).toMatchObject({ found: { node: 'node-b', control: '10.0.0.5:7400' } });
    expect(selectors).toEqual(['app.kubernetes.io/component=sidecar']);
    // node-b stops renewing; node-a goes on.
    at(60_000);
    leases = [withNode('node-a', '2'), withNode('node-b', '1')];
    const later = await d.all();
    expect(later.get('node-a')).toMatchObject({ found: { node: 'node-a' } });
    expect(later.get('node-b')).toEqual(gone);
  });
});
