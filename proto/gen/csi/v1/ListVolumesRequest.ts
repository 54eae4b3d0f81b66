// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface ListVolumesRequest {
  'maxEntries'?: (number);
  'startingToken'?: (string);
}

export interface ListVolumesRequest__Output {
  'maxEntries': (number);
  'startingToken': (string);
}
