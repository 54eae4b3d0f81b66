// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface DeleteVolumeGroupSnapshotRequest {
  'groupSnapshotId'?: (string);
  'snapshotIds'?: (string)[];
  'secrets'?: ({[key: string]: string});
}

export interface DeleteVolumeGroupSnapshotRequest__Output {
  'groupSnapshotId': (string);
  'snapshotIds': (string)[];
  'secrets': ({[key: string]: string});
}
