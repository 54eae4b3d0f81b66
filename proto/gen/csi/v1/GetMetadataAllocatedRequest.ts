// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto

import type { Long } from '@grpc/proto-loader';

export interface GetMetadataAllocatedRequest {
  'snapshotId'?: (string);
  'startingOffset'?: (number | string | Long);
  'maxResults'?: (number);
  'secrets'?: ({[key: string]: string});
}

export interface GetMetadataAllocatedRequest__Output {
  'snapshotId': (string);
  'startingOffset': (number);
  'maxResults': (number);
  'secrets': ({[key: string]: string});
}
