import type { Logger } from 'winston';
import type { NodeHandlers } from '../../../proto/gen/csi/v1/Node.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../errors.js';
import { csiUnary, csiUnimplemented } from '../csi-unary.js';
import type { HostMounts } from '../host-mounts.js';
import { KeyedLock } from '../keyed-lock.js';
import { mountsAt } from '../mount-table.js';
import { requireAccessType, requireField } from '../volume-capability.js';
import { unsupportedCapability } from './lab-capabilities.js';
import type { LabVolume, LabVolumeStore } from './lab-volume-store.js';
import type { LoopDevices } from './loop-devices.js';

export interface LabNodeOptions {
  nodeId: string;
  store: LabVolumeStore;
  loops: LoopDevices;
  mounts: HostMounts;
  logger: Logger;
}

/**
 * The lab driver's Node service. Stage attaches the image to a loop device (and, for a
 * filesystem, formats it if blank and mounts it at the staging path); publish bind-mounts
 * the loop device node onto a file (block) or the staging mount onto a directory.
 */
export function labNodeHandlers(o: LabNodeOptions): NodeHandlers {
  const { store, loops, mounts, logger } = o;
  const lock = new KeyedLock();

  const volume = async (id: string): Promise<LabVolume> => {
    const v = await store.get(id);
    if (v === undefined) throw new NotFoundError(`volume ${id} does not exist`);
    return v;
  };

  return {
    NodeStageVolume: csiUnary('NodeStageVolume', logger, async (req) => {
      const id = requireField(req.volumeId, 'volume_id');
      const staging = requireField(req.stagingTargetPath, 'staging_target_path');
      const type = requireAccessType(req.volumeCapability);
      const why = unsupportedCapability(req.volumeCapability!);
      if (why !== undefined) throw new InvalidArgumentError(why);
      const v = await volume(id);
      return lock.run(id, async () => {
        const dev = await loops.attach(store.imagePath(v.id));
        if (type === 'mount') {
          const mount = req.volumeCapability!.mount!;
          const fs = await mounts.ensureFilesystem(dev, mount.fsType || 'ext4');
          await mounts.mount(dev, staging, fs, mount.mountFlags);
        }
        logger.info('lab volume staged', { id, device: dev, type, staging });
        return {};
      });
    }),

    NodeUnstageVolume: csiUnary('NodeUnstageVolume', logger, async (req) => {
      const id = requireField(req.volumeId, 'volume_id');
      const staging = requireField(req.stagingTargetPath, 'staging_target_path');
      const v = await store.get(id);
      if (v === undefined) return {};
      return lock.run(id, async () => {
        const devs = await loops.of(store.imagePath(v.id));
        // Only our own mount: something else may sit on a staging path (a CSI proxy
        // mounts its own device at the kubelet's).
        if ((await mountsAt(staging)).some((m) => devs.includes(m.source))) await mounts.unmount(staging);
        await loops.detach(store.imagePath(v.id));
        logger.info('lab volume unstaged', { id });
        return {};
      });
    }),

    NodePublishVolume: csiUnary('NodePublishVolume', logger, async (req) => {
      const id = requireField(req.volumeId, 'volume_id');
      const target = requireField(req.targetPath, 'target_path');
      const type = requireAccessType(req.volumeCapability);
      const why = unsupportedCapability(req.volumeCapability!);
      if (why !== undefined) throw new InvalidArgumentError(why);
      const staging = requireField(req.stagingTargetPath, 'staging_target_path');
      const v = await volume(id);
      return lock.run(id, async () => {
        const [dev] = await loops.of(store.imagePath(v.id));
        if (dev === undefined) throw new FailedPreconditionError(`volume ${id} is not staged`);
        if (type === 'block') {
          await mounts.ensureFile(target);
          await mounts.bind(dev, target, { readonly: req.readonly });
        } else {
          if (!(await mountsAt(staging)).some((m) => m.source === dev)) throw new FailedPreconditionError(`volume ${id} is not staged at ${staging}`);
          await mounts.ensureDirectory(target);
          await mounts.bind(staging, target, { readonly: req.readonly });
        }
        logger.info('lab volume published', { id, target, type });
        return {};
      });
    }),

    NodeUnpublishVolume: csiUnary('NodeUnpublishVolume', logger, async (req) => {
      const id = requireField(req.volumeId, 'volume_id');
      const target = requireField(req.targetPath, 'target_path');
      await volume(id);
      return lock.run(id, async () => {
        await mounts.unmount(target);
        // CSI: the plugin removes the file or directory it created at target_path.
        await mounts.removeTarget(target);
        logger.info('lab volume unpublished', { id, target });
        return {};
      });
    }),

    NodeGetCapabilities: csiUnary('NodeGetCapabilities', logger, async () => ({
      capabilities: [{ rpc: { type: 'STAGE_UNSTAGE_VOLUME' } }],
    })),

    NodeGetInfo: csiUnary('NodeGetInfo', logger, async () => ({ nodeId: o.nodeId, maxVolumesPerNode: 0 })),

    NodeGetVolumeStats: csiUnimplemented('NodeGetVolumeStats'),
    NodeGetVolumeHealth: csiUnimplemented('NodeGetVolumeHealth'),
    NodeGetStorageHealth: csiUnimplemented('NodeGetStorageHealth'),
    NodeExpandVolume: csiUnimplemented('NodeExpandVolume'),
  };
}
