// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface ControllerModifyVolumeRequest {
  'volumeId'?: (string);
  'secrets'?: ({[key: string]: string});
  'mutableParameters'?: ({[key: string]: string});
}

export interface ControllerModifyVolumeRequest__Output {
  'volumeId': (string);
  'secrets': ({[key: string]: string});
  'mutableParameters': ({[key: string]: string});
}
