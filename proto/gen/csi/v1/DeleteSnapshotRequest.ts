// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface DeleteSnapshotRequest {
  'snapshotId'?: (string);
  'secrets'?: ({[key: string]: string});
}

export interface DeleteSnapshotRequest__Output {
  'snapshotId': (string);
  'secrets': ({[key: string]: string});
}
