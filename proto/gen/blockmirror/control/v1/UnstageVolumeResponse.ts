// Original file: blockmirror/control/v1/control.proto


export interface UnstageVolumeResponse {
}

export interface UnstageVolumeResponse__Output {
}
