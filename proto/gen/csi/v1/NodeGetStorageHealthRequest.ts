// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface NodeGetStorageHealthRequest {
  'secrets'?: ({[key: string]: string});
}

export interface NodeGetStorageHealthRequest__Output {
  'secrets': ({[key: string]: string});
}
