// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface ControllerGetVolumeHealthRequest {
  'volumeId'?: (string);
  'secrets'?: ({[key: string]: string});
}

export interface ControllerGetVolumeHealthRequest__Output {
  'volumeId': (string);
  'secrets': ({[key: string]: string});
}
