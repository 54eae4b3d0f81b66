// Original file: blockmirror/control/v1/control.proto


export interface UnfenceVolumeResponse {
}

export interface UnfenceVolumeResponse__Output {
}
