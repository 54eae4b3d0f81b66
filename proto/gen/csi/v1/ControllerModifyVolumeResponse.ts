// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface ControllerModifyVolumeResponse {
}

export interface ControllerModifyVolumeResponse__Output {
}
