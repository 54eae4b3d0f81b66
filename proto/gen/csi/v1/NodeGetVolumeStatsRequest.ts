// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface NodeGetVolumeStatsRequest {
  'volumeId'?: (string);
  'volumePath'?: (string);
  'stagingTargetPath'?: (string);
}

export interface NodeGetVolumeStatsRequest__Output {
  'volumeId': (string);
  'volumePath': (string);
  'stagingTargetPath': (string);
}
