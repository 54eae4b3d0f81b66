// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface ControllerGetVolumeRequest {
  'volumeId'?: (string);
}

export interface ControllerGetVolumeRequest__Output {
  'volumeId': (string);
}
