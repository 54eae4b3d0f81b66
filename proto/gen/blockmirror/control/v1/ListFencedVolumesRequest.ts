// Original file: blockmirror/control/v1/control.proto


export interface ListFencedVolumesRequest {
}

export interface ListFencedVolumesRequest__Output {
}
