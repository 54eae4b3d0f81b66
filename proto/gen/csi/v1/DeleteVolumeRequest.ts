// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface DeleteVolumeRequest {
  'volumeId'?: (string);
  'secrets'?: ({[key: string]: string});
}

export interface DeleteVolumeRequest__Output {
  'volumeId': (string);
  'secrets': ({[key: string]: string});
}
