// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface NodeUnpublishVolumeRequest {
  'volumeId'?: (string);
  'targetPath'?: (string);
}

export interface NodeUnpublishVolumeRequest__Output {
  'volumeId': (string);
  'targetPath': (string);
}
