// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface NodeGetVolumeHealthRequest {
  'volumeId'?: (string);
  'volumePublishPath'?: (string);
  'stagingTargetPath'?: (string);
}

export interface NodeGetVolumeHealthRequest__Output {
  'volumeId': (string);
  'volumePublishPath': (string);
  'stagingTargetPath': (string);
}
