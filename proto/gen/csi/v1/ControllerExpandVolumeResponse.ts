// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto

import type { Long } from '@grpc/proto-loader';

export interface ControllerExpandVolumeResponse {
  'capacityBytes'?: (number | string | Long);
  'nodeExpansionRequired'?: (boolean);
}

export interface ControllerExpandVolumeResponse__Output {
  'capacityBytes': (number);
  'nodeExpansionRequired': (boolean);
}
