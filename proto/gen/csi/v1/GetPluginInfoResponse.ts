// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface GetPluginInfoResponse {
  'name'?: (string);
  'vendorVersion'?: (string);
  'manifest'?: ({[key: string]: string});
}

export interface GetPluginInfoResponse__Output {
  'name': (string);
  'vendorVersion': (string);
  'manifest': ({[key: string]: string});
}
