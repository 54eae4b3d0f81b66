// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface CreateVolumeGroupSnapshotRequest {
  'name'?: (string);
  'sourceVolumeIds'?: (string)[];
  'secrets'?: ({[key: string]: string});
  'parameters'?: ({[key: string]: string});
}

export interface CreateVolumeGroupSnapshotRequest__Output {
  'name': (string);
  'sourceVolumeIds': (string)[];
  'secrets': ({[key: string]: string});
  'parameters': ({[key: string]: string});
}
