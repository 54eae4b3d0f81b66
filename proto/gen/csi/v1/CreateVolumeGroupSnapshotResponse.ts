// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto

import type { VolumeGroupSnapshot as _csi_v1_VolumeGroupSnapshot, VolumeGroupSnapshot__Output as _csi_v1_VolumeGroupSnapshot__Output } from '../../csi/v1/VolumeGroupSnapshot.js';

export interface CreateVolumeGroupSnapshotResponse {
  'groupSnapshot'?: (_csi_v1_VolumeGroupSnapshot | null);
}

export interface CreateVolumeGroupSnapshotResponse__Output {
  'groupSnapshot': (_csi_v1_VolumeGroupSnapshot__Output | null);
}
