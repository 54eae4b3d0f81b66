// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface ControllerPublishVolumeResponse {
  'publishContext'?: ({[key: string]: string});
}

export interface ControllerPublishVolumeResponse__Output {
  'publishContext': ({[key: string]: string});
}
