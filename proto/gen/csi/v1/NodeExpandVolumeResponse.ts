// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto

import type { Long } from '@grpc/proto-loader';

export interface NodeExpandVolumeResponse {
  'capacityBytes'?: (number | string | Long);
}

export interface NodeExpandVolumeResponse__Output {
  'capacityBytes': (number);
}
