// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface ControllerUnpublishVolumeRequest {
  'volumeId'?: (string);
  'nodeId'?: (string);
  'secrets'?: ({[key: string]: string});
}

export interface ControllerUnpublishVolumeRequest__Output {
  'volumeId': (string);
  'nodeId': (string);
  'secrets': ({[key: string]: string});
}
