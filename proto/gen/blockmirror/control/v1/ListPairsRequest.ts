// Original file: blockmirror/control/v1/control.proto


export interface ListPairsRequest {
}

export interface ListPairsRequest__Output {
}
