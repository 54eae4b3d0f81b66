// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto

import type { VolumeHealth as _csi_v1_VolumeHealth, VolumeHealth__Output as _csi_v1_VolumeHealth__Output } from '../../csi/v1/VolumeHealth.js';

export interface NodeGetVolumeHealthResponse {
  'volumeHealth'?: (_csi_v1_VolumeHealth | null);
}

export interface NodeGetVolumeHealthResponse__Output {
  'volumeHealth': (_csi_v1_VolumeHealth__Output | null);
}
