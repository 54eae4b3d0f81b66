// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface NodeUnstageVolumeRequest {
  'volumeId'?: (string);
  'stagingTargetPath'?: (string);
}

export interface NodeUnstageVolumeRequest__Output {
  'volumeId': (string);
  'stagingTargetPath': (string);
}
