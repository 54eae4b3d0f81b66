// Original file: blockmirror/control/v1/control.proto


export interface ListVolumesRequest {
}

export interface ListVolumesRequest__Output {
}
