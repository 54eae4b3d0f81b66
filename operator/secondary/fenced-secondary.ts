import type { Logger } from 'winston';
import type { FencedVolume__Output } from '../../proto/gen/blockmirror/control/v1/FencedVolume.js';
import type { ReplicationPair, SecondaryFence } from '../api/replication-pair.js';
import type { SidecarLookup } from '../discovery/sidecar-directory.js';
import type { ClaimUser, EventRecord, KubeClient } from '../kube/kube-client.js';
import type { Problem } from '../status/pair-status.js';
import { holderPod, holderPodName, type HolderPodOptions } from './holder-pod.js';

/** A secondary's CSI volume, as the operator fences it. */
export interface FencedVolume {
  /** The PersistentVolume. */
  pvName: string;
  claim: string;
  /** The CSI node proxy's name for it (pvNameForVolume of the volume handle). */
  splicePv: string;
  driver: string;
  volumeMode: 'Filesystem' | 'Block';
}

/** What fencing needs from a sidecar's control API. */
export interface FenceControl {
  fenceVolume(pv: string, pair: string, volume: string): Promise<FencedVolume__Output>;
  unfenceVolume(pv: string): Promise<void>;
}

export interface FencedSecondaryDeps {
  /** Every node's sidecar, live or not (SidecarDirectory.all). */
  sidecars(): Promise<Map<string, SidecarLookup>>;
  control(endpoint: string): FenceControl;
  pods: Pick<KubeClient, 'getPod' | 'createPod' | 'deletePod' | 'podsUsingClaim'>;
  holder: HolderPodOptions;
  event(pair: ReplicationPair, e: EventRecord): Promise<void>;
  logger: Logger;
  /** How often a pair waiting for its volume looks again. */
  pollMs: number;
}

/** Where the pass got: the fence as status shows it, and the device, or why not yet. */
export interface Placement {
  fence: SecondaryFence;
  held?: { node: string; device: string };
  problem?: Problem;
}

const ALREADY_EXISTS = 6;

/**
 * A secondary on a CSI volume. Such a volume is a device on a node only while the
 * kubelet stages it for a pod, and a pod given it for writing would write under the
 * pair. So, in this order, on every pass:
 * 1. the fence is registered on every node's sidecar before anything can stage the
 *    volume (again on each pass: a node added later gets it), so the CSI proxy stages it
 *    as a raw device only and never publishes it for writing;
 * 2. pods that got the volume for writing before the fence hold the pair back
 *    (SecondaryInUse) until they are gone;
 * 3. a holder pod mounts the claim read-only, so that the kubelet stages it on a node
 *    the volume's topology allows;
 * 4. the node's proxy reports the raw device it holds: the pair is created there.
 * Deleting undoes it in reverse: the caller deletes the sidecar pair, then `release`
 * deletes the holder pod and, once it is gone, the fences.
 */
export class FencedSecondary {
  readonly #d: FencedSecondaryDeps;

  constructor(deps: FencedSecondaryDeps) {
    this.#d = deps;
  }

  async place(pair: ReplicationPair, vol: FencedVolume): Promise<Placement> {
    const { namespace } = pair.metadata;
    const wait = (fence: SecondaryFence, reason: string, message: string): Placement => ({ fence, problem: { reason, message, permanent: false, recheckAfterMs: this.#d.pollMs, notReplicating: true } });

    // 1. The fence, on every node whose sidecar runs.
    const fenced = await this.#fenceAll(pair, vol);
    if ('problem' in fenced) return fenced;
    const { fence, holds } = fenced;

    // 2. Writers from before the fence. A pod on a node that holds the volume fenced got a placeholder.
    const holderName = holderPodName(pair);
    const users = (await this.#d.pods.podsUsingClaim(namespace, vol.claim)).filter((u) => u.name !== holderName);
    const heldOn = (node: string | undefined): boolean => node !== undefined && holds.get(node)?.hold === 'held';
    const writers = users.filter((u) => u.phase === 'Running' && !heldOn(u.node));
    if (writers.length > 0) return this.#inUse(pair, fence, vol, writers, 'use it mounted since before its fence');

    // 3. The holder pod.
    const holder = await this.#d.pods.getPod(namespace, holderName);
    fence.holderPod = holderName;
    if (holder === undefined) {
      await this.#d.pods.createPod(holderPod(pair, vol.claim, vol.volumeMode, this.#d.holder));
      await this.#d.event(pair, { type: 'Normal', reason: 'HolderCreated', message: `pod ${holderName} stages volume ${vol.pvName} on a node for the pair to write to (it mounts the claim read-only and sees an empty placeholder)` });
      return wait(fence, 'Staging', `waiting for holder pod ${holderName} to stage volume ${vol.pvName} on its node`);
    }
    if (holder.deleting) return wait(fence, 'Staging', `holder pod ${holderName} is being deleted; another one follows`);
    if (holder.node === undefined) return wait(fence, 'Staging', `waiting for holder pod ${holderName} to be scheduled (${holder.phase ?? 'Pending'}); it stages volume ${vol.pvName} on its node`);

    // 4. The raw device its node's proxy holds.
    const onNode = holds.get(holder.node);
    if (onNode?.hold === 'held' && onNode.device !== '') {
      fence.node = holder.node;
      fence.device = onNode.device;
      return { fence, held: { node: holder.node, device: onNode.device } };
    }
    if (onNode?.hold === 'staged-unfenced') {
      // The kubelet gave the holder a staging made before the fence, which it keeps while
      // any pod on the node needs the volume.
      const waiting = users.filter((u) => u.node === holder.node);
      if (waiting.length > 0) return this.#inUse(pair, fence, vol, waiting, `keep it staged for writing on node ${holder.node} since before its fence`);
      await this.#d.pods.deletePod(namespace, holderName);
      await this.#d.event(pair, { type: 'Normal', reason: 'Restaging', message: `volume ${vol.pvName} on node ${holder.node} was staged for writing before its fence: holder pod ${holderName} is deleted so that the kubelet stages it again, fenced` });
      return wait(fence, 'Staging', `holder pod ${holderName} restarts so that volume ${vol.pvName} is staged again, fenced`);
    }
    if (holder.phase === 'Running') {
      const message =
        `holder pod ${holderName} runs on node ${holder.node} but no blockmirror CSI proxy there holds volume ${vol.pvName}: ` +
        `check that the chart's csiProxy.drivers names driver ${vol.driver} and that the node's blockmirror sidecar pod runs`;
      await this.#warnOnce(pair, 'NotFenced', message);
      return wait(fence, 'NotFenced', message);
    }
    return wait(fence, 'Staging', `waiting for holder pod ${holderName} to stage volume ${vol.pvName} on node ${holder.node} (${holder.phase ?? 'Pending'})`);
  }

  /**
   * Step 1 of `place` alone, and the pods that use the claim: a primary on a CSI volume
   * being demoted is fenced first, so that once its pods are gone no pod is given the
   * volume for writing again, whatever the kubelet does next; its pair demotes only then.
   */
  async fenceForDemotion(pair: ReplicationPair, vol: FencedVolume): Promise<{ fence: SecondaryFence; problem?: Problem; users: ClaimUser[] }> {
    const fenced = await this.#fenceAll(pair, vol);
    if ('problem' in fenced) return { ...fenced, users: [] };
    const holderName = holderPodName(pair);
    const users = (await this.#d.pods.podsUsingClaim(pair.metadata.namespace, vol.claim)).filter((u) => u.name !== holderName);
    return { fence: fenced.fence, users };
  }

  /**
   * The fence on every node whose sidecar runs (all at once: one slow node must not hold
   * up the rest), again on each pass: a node added later gets it.
   */
  async #fenceAll(pair: ReplicationPair, vol: FencedVolume): Promise<{ fence: SecondaryFence; holds: Map<string, FencedVolume__Output> } | { fence: SecondaryFence; problem: Problem }> {
    const { namespace, name } = pair.metadata;
    const ref = `${namespace}/${name}`;
    const fence: SecondaryFence = { volume: vol.pvName, pv: vol.splicePv, fencedNodes: [] };
    const wait = (reason: string, message: string): { fence: SecondaryFence; problem: Problem } => ({ fence, problem: { reason, message, permanent: false, recheckAfterMs: this.#d.pollMs, notReplicating: true } });
    const sidecars = [...(await this.#d.sidecars())].sort(([x], [y]) => x.localeCompare(y));
    const holds = new Map<string, FencedVolume__Output>();
    const unreachable: string[] = [];
    let other: Error | undefined;
    const answers = await Promise.all(
      sidecars.map(async ([node, s]) => {
        // A sidecar that stopped renewing is not running: its node's proxy cannot read any
        // fence then, and stages nothing (it fails closed) until the sidecar is back.
        if ('missing' in s) return undefined;
        try {
          return { node, fenced: await this.#d.control(s.found.control).fenceVolume(vol.splicePv, ref, vol.pvName) };
        } catch (err) {
          return { node, err: err as Error & { grpcCode?: number } };
        }
      }),
    );
    for (const a of answers) {
      if (a === undefined) continue;
      if ('fenced' in a) holds.set(a.node, a.fenced!);
      else if (a.err.grpcCode === ALREADY_EXISTS) other = a.err;
      else unreachable.push(`${a.node} (${a.err.message})`);
    }
    if (other !== undefined) {
      return { fence, problem: { reason: 'VolumeFencedByOther', message: `${other.message}: a volume is the secondary of one pair only`, permanent: true, recheckAfterMs: this.#d.pollMs * 5, notReplicating: true } };
    }
    fence.fencedNodes = [...holds.keys()];
    if (holds.size === 0) return wait('SidecarNotFound', 'no blockmirror sidecar runs on any node of this site: nothing can fence the secondary volume');
    if (unreachable.length > 0) {
      // Live there, but not told: its proxy would stage the volume for a pod to write to.
      return wait('FenceIncomplete', `the fence of volume ${vol.pvName} could not be registered on node(s) ${unreachable.join(', ')}; nothing stages it until every node has it`);
    }
    return { fence, holds };
  }

  /**
   * Undoes `place` once the sidecar pair is gone: the holder pod first (its node's proxy
   * then gives the raw device back to the driver), and only once it is gone the fences,
   * so that no pod is given the volume for writing while the holder's fenced staging is
   * still there. 'waiting': called again later.
   */
  async release(pair: ReplicationPair, fenced: { pv: string; volume: string } | undefined): Promise<'done' | 'waiting'> {
    const { namespace } = pair.metadata;
    const holderName = holderPodName(pair);
    const holder = await this.#d.pods.getPod(namespace, holderName);
    if (holder !== undefined) {
      if (!holder.deleting) {
        await this.#d.pods.deletePod(namespace, holderName);
        await this.#d.event(pair, { type: 'Normal', reason: 'HolderDeleted', message: `holder pod ${holderName} deleted: the volume is given back to its driver on node ${holder.node ?? '(none)'}` });
      }
      return 'waiting';
    }
    if (fenced === undefined) return 'done';
    const { pv } = fenced;
    const unfenced: string[] = [];
    for (const [node, s] of await this.#d.sidecars()) {
      if ('missing' in s) {
        this.#d.logger.warn('fence left on a node whose sidecar is gone', { node, pv, reason: s.missing });
        continue;
      }
      await this.#d.control(s.found.control).unfenceVolume(pv);
      unfenced.push(node);
    }
    if (unfenced.length > 0) await this.#d.event(pair, { type: 'Normal', reason: 'Unfenced', message: `volume ${fenced.volume} is no longer fenced on node(s) ${unfenced.sort().join(', ')}: pods may mount it for writing` });
    return 'done';
  }

  async #inUse(pair: ReplicationPair, fence: SecondaryFence, vol: FencedVolume, pods: ClaimUser[], what: string): Promise<Placement> {
    const list = pods.map((p) => `${p.namespace}/${p.name}${p.node !== undefined ? ` on node ${p.node}` : ''}`).join(', ');
    const message =
      `pod(s) ${list} ${what}: volume ${vol.pvName} of claim ${vol.claim} is this pair's secondary, which only the pair may write ` +
      `(other writes would be overwritten, readers would see half-applied data). Delete them; replication starts once the volume is free. ` +
      `New pods are refused while the pair exists (FailedMount).`;
    await this.#warnOnce(pair, 'SecondaryInUse', message);
    return { fence, problem: { reason: 'SecondaryInUse', message, permanent: false, recheckAfterMs: this.#d.pollMs, notReplicating: true } };
  }

  /** A Warning event when the pair's Ready condition does not say so already. */
  async #warnOnce(pair: ReplicationPair, reason: string, message: string): Promise<void> {
    const known = pair.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === reason);
    if (!known) await this.#d.event(pair, { type: 'Warning', reason, message });
  }
}
