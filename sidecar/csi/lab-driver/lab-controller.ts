import type { Logger } from 'winston';
import type { ControllerHandlers } from '../../../proto/gen/csi/v1/Controller.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../errors.js';
import { csiUnary, csiUnimplemented } from '../csi-unary.js';
import { KeyedLock } from '../keyed-lock.js';
import { requireField } from '../volume-capability.js';
import { capacityFits, labCapacity } from './lab-capacity.js';
import { unsupportedCapability } from './lab-capabilities.js';
import { LabVolumeStore, type LabVolume } from './lab-volume-store.js';
import type { LoopDevices } from './loop-devices.js';

function sameParameters(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

/** The lab driver's Controller service: sparse image files, idempotent by name. */
export function labControllerHandlers(store: LabVolumeStore, loops: LoopDevices, logger: Logger): ControllerHandlers {
  const lock = new KeyedLock();
  return {
    CreateVolume: csiUnary('CreateVolume', logger, async (req) => {
      const name = requireField(req.name, 'name');
      if (req.volumeCapabilities.length === 0) throw new InvalidArgumentError('volume_capabilities is required');
      for (const cap of req.volumeCapabilities) {
        const why = unsupportedCapability(cap);
        if (why !== undefined) throw new InvalidArgumentError(why);
      }
      // No snapshots or clones: their capabilities are not advertised.
      if (req.volumeContentSource != null) throw new InvalidArgumentError('volume_content_source is not supported');
      const capacityBytes = labCapacity(req.capacityRange);
      const id = LabVolumeStore.idFor(name);
      return lock.run(id, async () => {
        let v: LabVolume | undefined = await store.get(id);
        if (v !== undefined) {
          if (v.name !== name || !capacityFits(v.capacityBytes, req.capacityRange) || !sameParameters(v.parameters, req.parameters)) {
            throw new AlreadyExistsError(`volume ${name} exists with a different capacity or parameters`);
          }
        } else {
          v = { id, name, capacityBytes, parameters: { ...req.parameters } };
          await store.create(v);
          logger.info('lab volume created', { id, capacityBytes });
        }
        // Parameters become the volume context: how a StorageClass parameter such as the
        // replication opt-in reaches the node (and a CSI proxy in front of it).
        return { volume: { volumeId: v.id, capacityBytes: v.capacityBytes, volumeContext: { ...v.parameters } } };
      });
    }),

    DeleteVolume: csiUnary('DeleteVolume', logger, async (req) => {
      const id = requireField(req.volumeId, 'volume_id');
      return lock.run(id, async () => {
        if ((await store.get(id)) === undefined) return {};
        if ((await loops.of(store.imagePath(id))).length > 0) throw new FailedPreconditionError(`volume ${id} is still staged on the node`);
        await store.delete(id);
        logger.info('lab volume deleted', { id });
        return {};
      });
    }),

    ValidateVolumeCapabilities: csiUnary('ValidateVolumeCapabilities', logger, async (req) => {
      const id = requireField(req.volumeId, 'volume_id');
      if (req.volumeCapabilities.length === 0) throw new InvalidArgumentError('volume_capabilities is required');
      const v = await store.get(id);
      if (v === undefined) throw new NotFoundError(`volume ${id} does not exist`);
      for (const cap of req.volumeCapabilities) {
        const why = unsupportedCapability(cap);
        if (why !== undefined) return { message: why };
      }
      return { confirmed: { volumeContext: req.volumeContext, volumeCapabilities: req.volumeCapabilities, parameters: req.parameters } };
    }),

    ControllerGetCapabilities: csiUnary('ControllerGetCapabilities', logger, async () => ({
      capabilities: [{ rpc: { type: 'CREATE_DELETE_VOLUME' } }],
    })),

    ControllerPublishVolume: csiUnimplemented('ControllerPublishVolume'),
    ControllerUnpublishVolume: csiUnimplemented('ControllerUnpublishVolume'),
    ListVolumes: csiUnimplemented('ListVolumes'),
    ControllerListVolumeHealth: csiUnimplemented('ControllerListVolumeHealth'),
    ControllerGetVolumeHealth: csiUnimplemented('ControllerGetVolumeHealth'),
    GetCapacity: csiUnimplemented('GetCapacity'),
    CreateSnapshot: csiUnimplemented('CreateSnapshot'),
    DeleteSnapshot: csiUnimplemented('DeleteSnapshot'),
    ListSnapshots: csiUnimplemented('ListSnapshots'),
    GetSnapshot: csiUnimplemented('GetSnapshot'),
    ControllerExpandVolume: csiUnimplemented('ControllerExpandVolume'),
    ControllerGetVolume: csiUnimplemented('ControllerGetVolume'),
    ControllerModifyVolume: csiUnimplemented('ControllerModifyVolume'),
  };
}
