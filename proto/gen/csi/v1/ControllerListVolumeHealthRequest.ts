// Original file: github.com/container-storage-interface/spec@v1.13.0/csi.proto


export interface ControllerListVolumeHealthRequest {
  'maxEntries'?: (number);
  'startingToken'?: (string);
  'secrets'?: ({[key: string]: string});
}

export interface ControllerListVolumeHealthRequest__Output {
  'maxEntries': (number);
  'startingToken': (string);
  'secrets': ({[key: string]: string});
}
