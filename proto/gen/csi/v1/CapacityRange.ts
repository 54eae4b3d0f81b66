// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto

import type { Long } from '@grpc/proto-loader';

export interface CapacityRange {
  'requiredBytes'?: (number | string | Long);
  'limitBytes'?: (number | string | Long);
}

export interface CapacityRange__Output {
  'requiredBytes': (number);
  'limitBytes': (number);
}
