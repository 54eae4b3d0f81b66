// Original file: blockmirror/control/v1/control.proto


export interface DeletePairResponse {
}

export interface DeletePairResponse__Output {
}
