// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface ListSnapshotsRequest {
  'maxEntries'?: (number);
  'startingToken'?: (string);
  'sourceVolumeId'?: (string);
  'snapshotId'?: (string);
  'secrets'?: ({[key: string]: string});
}

export interface ListSnapshotsRequest__Output {
  'maxEntries': (number);
  'startingToken': (string);
  'sourceVolumeId': (string);
  'snapshotId': (string);
  'secrets': ({[key: string]: string});
}
