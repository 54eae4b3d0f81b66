// Original file: blockmirror/control/v1/control.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AttachVolumeRequest as _blockmirror_control_v1_AttachVolumeRequest, AttachVolumeRequest__Output as _blockmirror_control_v1_AttachVolumeRequest__Output } from '../../../blockmirror/control/v1/AttachVolumeRequest.js';
import type { CreatePairRequest as _blockmirror_control_v1_CreatePairRequest, CreatePairRequest__Output as _blockmirror_control_v1_CreatePairRequest__Output } from '../../../blockmirror/control/v1/CreatePairRequest.js';
import type { DeletePairRequest as _blockmirror_control_v1_DeletePairRequest, DeletePairRequest__Output as _blockmirror_control_v1_DeletePairRequest__Output } from '../../../blockmirror/control/v1/DeletePairRequest.js';
import type { DeletePairResponse as _blockmirror_control_v1_DeletePairResponse, DeletePairResponse__Output as _blockmirror_control_v1_DeletePairResponse__Output } from '../../../blockmirror/control/v1/DeletePairResponse.js';
import type { DetachVolumeRequest as _blockmirror_control_v1_DetachVolumeRequest, DetachVolumeRequest__Output as _blockmirror_control_v1_DetachVolumeRequest__Output } from '../../../blockmirror/control/v1/DetachVolumeRequest.js';
import type { GetPairRequest as _blockmirror_control_v1_GetPairRequest, GetPairRequest__Output as _blockmirror_control_v1_GetPairRequest__Output } from '../../../blockmirror/control/v1/GetPairRequest.js';
import type { ListPairsRequest as _blockmirror_control_v1_ListPairsRequest, ListPairsRequest__Output as _blockmirror_control_v1_ListPairsRequest__Output } from '../../../blockmirror/control/v1/ListPairsRequest.js';
import type { ListPairsResponse as _blockmirror_control_v1_ListPairsResponse, ListPairsResponse__Output as _blockmirror_control_v1_ListPairsResponse__Output } from '../../../blockmirror/control/v1/ListPairsResponse.js';
import type { ListVolumesRequest as _blockmirror_control_v1_ListVolumesRequest, ListVolumesRequest__Output as _blockmirror_control_v1_ListVolumesRequest__Output } from '../../../blockmirror/control/v1/ListVolumesRequest.js';
import type { ListVolumesResponse as _blockmirror_control_v1_ListVolumesResponse, ListVolumesResponse__Output as _blockmirror_control_v1_ListVolumesResponse__Output } from '../../../blockmirror/control/v1/ListVolumesResponse.js';
import type { Pair as _blockmirror_control_v1_Pair, Pair__Output as _blockmirror_control_v1_Pair__Output } from '../../../blockmirror/control/v1/Pair.js';
import type { PausePairRequest as _blockmirror_control_v1_PausePairRequest, PausePairRequest__Output as _blockmirror_control_v1_PausePairRequest__Output } from '../../../blockmirror/control/v1/PausePairRequest.js';
import type { ResumePairRequest as _blockmirror_control_v1_ResumePairRequest, ResumePairRequest__Output as _blockmirror_control_v1_ResumePairRequest__Output } from '../../../blockmirror/control/v1/ResumePairRequest.js';
import type { SplicedVolume as _blockmirror_control_v1_SplicedVolume, SplicedVolume__Output as _blockmirror_control_v1_SplicedVolume__Output } from '../../../blockmirror/control/v1/SplicedVolume.js';
import type { StageVolumeRequest as _blockmirror_control_v1_StageVolumeRequest, StageVolumeRequest__Output as _blockmirror_control_v1_StageVolumeRequest__Output } from '../../../blockmirror/control/v1/StageVolumeRequest.js';
import type { UnstageVolumeRequest as _blockmirror_control_v1_UnstageVolumeRequest, UnstageVolumeRequest__Output as _blockmirror_control_v1_UnstageVolumeRequest__Output } from '../../../blockmirror/control/v1/UnstageVolumeRequest.js';
import type { UnstageVolumeResponse as _blockmirror_control_v1_UnstageVolumeResponse, UnstageVolumeResponse__Output as _blockmirror_control_v1_UnstageVolumeResponse__Output } from '../../../blockmirror/control/v1/UnstageVolumeResponse.js';
import type { UpdatePairRequest as _blockmirror_control_v1_UpdatePairRequest, UpdatePairRequest__Output as _blockmirror_control_v1_UpdatePairRequest__Output } from '../../../blockmirror/control/v1/UpdatePairRequest.js';

export interface ControlServiceClient extends grpc.Client {
  AttachVolume(argument: _blockmirror_control_v1_AttachVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  AttachVolume(argument: _blockmirror_control_v1_AttachVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  AttachVolume(argument: _blockmirror_control_v1_AttachVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  AttachVolume(argument: _blockmirror_control_v1_AttachVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  attachVolume(argument: _blockmirror_control_v1_AttachVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  attachVolume(argument: _blockmirror_control_v1_AttachVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  attachVolume(argument: _blockmirror_control_v1_AttachVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  attachVolume(argument: _blockmirror_control_v1_AttachVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  
  CreatePair(argument: _blockmirror_control_v1_CreatePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  CreatePair(argument: _blockmirror_control_v1_CreatePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  CreatePair(argument: _blockmirror_control_v1_CreatePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  CreatePair(argument: _blockmirror_control_v1_CreatePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  createPair(argument: _blockmirror_control_v1_CreatePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  createPair(argument: _blockmirror_control_v1_CreatePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  createPair(argument: _blockmirror_control_v1_CreatePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  createPair(argument: _blockmirror_control_v1_CreatePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  
  DeletePair(argument: _blockmirror_control_v1_DeletePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_DeletePairResponse__Output>): grpc.ClientUnaryCall;
  DeletePair(argument: _blockmirror_control_v1_DeletePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_DeletePairResponse__Output>): grpc.ClientUnaryCall;
  DeletePair(argument: _blockmirror_control_v1_DeletePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_DeletePairResponse__Output>): grpc.ClientUnaryCall;
  DeletePair(argument: _blockmirror_control_v1_DeletePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_DeletePairResponse__Output>): grpc.ClientUnaryCall;
  deletePair(argument: _blockmirror_control_v1_DeletePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_DeletePairResponse__Output>): grpc.ClientUnaryCall;
  deletePair(argument: _blockmirror_control_v1_DeletePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_DeletePairResponse__Output>): grpc.ClientUnaryCall;
  deletePair(argument: _blockmirror_control_v1_DeletePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_DeletePairResponse__Output>): grpc.ClientUnaryCall;
  deletePair(argument: _blockmirror_control_v1_DeletePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_DeletePairResponse__Output>): grpc.ClientUnaryCall;
  
  DetachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  DetachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  DetachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  DetachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  detachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  detachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  detachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  detachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  
  GetPair(argument: _blockmirror_control_v1_GetPairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  GetPair(argument: _blockmirror_control_v1_GetPairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  GetPair(argument: _blockmirror_control_v1_GetPairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  GetPair(argument: _blockmirror_control_v1_GetPairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  getPair(argument: _blockmirror_control_v1_GetPairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  getPair(argument: _blockmirror_control_v1_GetPairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  getPair(argument: _blockmirror_control_v1_GetPairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  getPair(argument: _blockmirror_control_v1_GetPairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  
  ListPairs(argument: _blockmirror_control_v1_ListPairsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_ListPairsResponse__Output>): grpc.ClientUnaryCall;
  ListPairs(argument: _blockmirror_control_v1_ListPairsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_ListPairsResponse__Output>): grpc.ClientUnaryCall;
  ListPairs(argument: _blockmirror_control_v1_ListPairsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_ListPairsResponse__Output>): grpc.ClientUnaryCall;
  ListPairs(argument: _blockmirror_control_v1_ListPairsRequest, callback: grpc.requestCallback<_blockmirror_control_v1_ListPairsResponse__Output>): grpc.ClientUnaryCall;
  listPairs(argument: _blockmirror_control_v1_ListPairsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_ListPairsResponse__Output>): grpc.ClientUnaryCall;
  listPairs(argument: _blockmirror_control_v1_ListPairsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_ListPairsResponse__Output>): grpc.ClientUnaryCall;
  listPairs(argument: _blockmirror_control_v1_ListPairsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_ListPairsResponse__Output>): grpc.ClientUnaryCall;
  listPairs(argument: _blockmirror_control_v1_ListPairsRequest, callback: grpc.requestCallback<_blockmirror_control_v1_ListPairsResponse__Output>): grpc.ClientUnaryCall;
  
  ListVolumes(argument: _blockmirror_control_v1_ListVolumesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_ListVolumesResponse__Output>): grpc.ClientUnaryCall;
  ListVolumes(argument: _blockmirror_control_v1_ListVolumesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_ListVolumesResponse__Output>): grpc.ClientUnaryCall;
  ListVolumes(argument: _blockmirror_control_v1_ListVolumesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_ListVolumesResponse__Output>): grpc.ClientUnaryCall;
  ListVolumes(argument: _blockmirror_control_v1_ListVolumesRequest, callback: grpc.requestCallback<_blockmirror_control_v1_ListVolumesResponse__Output>): grpc.ClientUnaryCall;
  listVolumes(argument: _blockmirror_control_v1_ListVolumesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_ListVolumesResponse__Output>): grpc.ClientUnaryCall;
  listVolumes(argument: _blockmirror_control_v1_ListVolumesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_ListVolumesResponse__Output>): grpc.ClientUnaryCall;
  listVolumes(argument: _blockmirror_control_v1_ListVolumesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_ListVolumesResponse__Output>): grpc.ClientUnaryCall;
  listVolumes(argument: _blockmirror_control_v1_ListVolumesRequest, callback: grpc.requestCallback<_blockmirror_control_v1_ListVolumesResponse__Output>): grpc.ClientUnaryCall;
  
  PausePair(argument: _blockmirror_control_v1_PausePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  PausePair(argument: _blockmirror_control_v1_PausePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  PausePair(argument: _blockmirror_control_v1_PausePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  PausePair(argument: _blockmirror_control_v1_PausePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  pausePair(argument: _blockmirror_control_v1_PausePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  pausePair(argument: _blockmirror_control_v1_PausePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  pausePair(argument: _blockmirror_control_v1_PausePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  pausePair(argument: _blockmirror_control_v1_PausePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  
  ResumePair(argument: _blockmirror_control_v1_ResumePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  ResumePair(argument: _blockmirror_control_v1_ResumePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  ResumePair(argument: _blockmirror_control_v1_ResumePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  ResumePair(argument: _blockmirror_control_v1_ResumePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  resumePair(argument: _blockmirror_control_v1_ResumePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  resumePair(argument: _blockmirror_control_v1_ResumePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  resumePair(argument: _blockmirror_control_v1_ResumePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  resumePair(argument: _blockmirror_control_v1_ResumePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  
  StageVolume(argument: _blockmirror_control_v1_StageVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  StageVolume(argument: _blockmirror_control_v1_StageVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  StageVolume(argument: _blockmirror_control_v1_StageVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  StageVolume(argument: _blockmirror_control_v1_StageVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  stageVolume(argument: _blockmirror_control_v1_StageVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  stageVolume(argument: _blockmirror_control_v1_StageVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  stageVolume(argument: _blockmirror_control_v1_StageVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  stageVolume(argument: _blockmirror_control_v1_StageVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  
  UnstageVolume(argument: _blockmirror_control_v1_UnstageVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_UnstageVolumeResponse__Output>): grpc.ClientUnaryCall;
  UnstageVolume(argument: _blockmirror_control_v1_UnstageVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_UnstageVolumeResponse__Output>): grpc.ClientUnaryCall;
  UnstageVolume(argument: _blockmirror_control_v1_UnstageVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_UnstageVolumeResponse__Output>): grpc.ClientUnaryCall;
  UnstageVolume(argument: _blockmirror_control_v1_UnstageVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_UnstageVolumeResponse__Output>): grpc.ClientUnaryCall;
  unstageVolume(argument: _blockmirror_control_v1_UnstageVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_UnstageVolumeResponse__Output>): grpc.ClientUnaryCall;
  unstageVolume(argument: _blockmirror_control_v1_UnstageVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_UnstageVolumeResponse__Output>): grpc.ClientUnaryCall;
  unstageVolume(argument: _blockmirror_control_v1_UnstageVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_UnstageVolumeResponse__Output>): grpc.ClientUnaryCall;
  unstageVolume(argument: _blockmirror_control_v1_UnstageVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_UnstageVolumeResponse__Output>): grpc.ClientUnaryCall;
  
  UpdatePair(argument: _blockmirror_control_v1_UpdatePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  UpdatePair(argument: _blockmirror_control_v1_UpdatePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  UpdatePair(argument: _blockmirror_control_v1_UpdatePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  UpdatePair(argument: _blockmirror_control_v1_UpdatePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  updatePair(argument: _blockmirror_control_v1_UpdatePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  updatePair(argument: _blockmirror_control_v1_UpdatePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  updatePair(argument: _blockmirror_control_v1_UpdatePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  updatePair(argument: _blockmirror_control_v1_UpdatePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  
}

export interface ControlServiceHandlers extends grpc.UntypedServiceImplementation {
  AttachVolume: grpc.handleUnaryCall<_blockmirror_control_v1_AttachVolumeRequest__Output, _blockmirror_control_v1_SplicedVolume>;
  
  CreatePair: grpc.handleUnaryCall<_blockmirror_control_v1_CreatePairRequest__Output, _blockmirror_control_v1_Pair>;
  
  DeletePair: grpc.handleUnaryCall<_blockmirror_control_v1_DeletePairRequest__Output, _blockmirror_control_v1_DeletePairResponse>;
  
  DetachVolume: grpc.handleUnaryCall<_blockmirror_control_v1_DetachVolumeRequest__Output, _blockmirror_control_v1_SplicedVolume>;
  
  GetPair: grpc.handleUnaryCall<_blockmirror_control_v1_GetPairRequest__Output, _blockmirror_control_v1_Pair>;
  
  ListPairs: grpc.handleUnaryCall<_blockmirror_control_v1_ListPairsRequest__Output, _blockmirror_control_v1_ListPairsResponse>;
  
  ListVolumes: grpc.handleUnaryCall<_blockmirror_control_v1_ListVolumesRequest__Output, _blockmirror_control_v1_ListVolumesResponse>;
  
  PausePair: grpc.handleUnaryCall<_blockmirror_control_v1_PausePairRequest__Output, _blockmirror_control_v1_Pair>;
  
  ResumePair: grpc.handleUnaryCall<_blockmirror_control_v1_ResumePairRequest__Output, _blockmirror_control_v1_Pair>;
  
  StageVolume: grpc.handleUnaryCall<_blockmirror_control_v1_StageVolumeRequest__Output, _blockmirror_control_v1_SplicedVolume>;
  
  UnstageVolume: grpc.handleUnaryCall<_blockmirror_control_v1_UnstageVolumeRequest__Output, _blockmirror_control_v1_UnstageVolumeResponse>;
  
  UpdatePair: grpc.handleUnaryCall<_blockmirror_control_v1_UpdatePairRequest__Output, _blockmirror_control_v1_Pair>;
  
}

export interface ControlServiceDefinition extends grpc.ServiceDefinition {
  AttachVolume: MethodDefinition<_blockmirror_control_v1_AttachVolumeRequest, _blockmirror_control_v1_SplicedVolume, _blockmirror_control_v1_AttachVolumeRequest__Output, _blockmirror_control_v1_SplicedVolume__Output>
  CreatePair: MethodDefinition<_blockmirror_control_v1_CreatePairRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_CreatePairRequest__Output, _blockmirror_control_v1_Pair__Output>
  DeletePair: MethodDefinition<_blockmirror_control_v1_DeletePairRequest, _blockmirror_control_v1_DeletePairResponse, _blockmirror_control_v1_DeletePairRequest__Output, _blockmirror_control_v1_DeletePairResponse__Output>
  DetachVolume: MethodDefinition<_blockmirror_control_v1_DetachVolumeRequest, _blockmirror_control_v1_SplicedVolume, _blockmirror_control_v1_DetachVolumeRequest__Output, _blockmirror_control_v1_SplicedVolume__Output>
  GetPair: MethodDefinition<_blockmirror_control_v1_GetPairRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_GetPairRequest__Output, _blockmirror_control_v1_Pair__Output>
  ListPairs: MethodDefinition<_blockmirror_control_v1_ListPairsRequest, _blockmirror_control_v1_ListPairsResponse, _blockmirror_control_v1_ListPairsRequest__Output, _blockmirror_control_v1_ListPairsResponse__Output>
  ListVolumes: MethodDefinition<_blockmirror_control_v1_ListVolumesRequest, _blockmirror_control_v1_ListVolumesResponse, _blockmirror_control_v1_ListVolumesRequest__Output, _blockmirror_control_v1_ListVolumesResponse__Output>
  PausePair: MethodDefinition<_blockmirror_control_v1_PausePairRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_PausePairRequest__Output, _blockmirror_control_v1_Pair__Output>
  ResumePair: MethodDefinition<_blockmirror_control_v1_ResumePairRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_ResumePairRequest__Output, _blockmirror_control_v1_Pair__Output>
  StageVolume: MethodDefinition<_blockmirror_control_v1_StageVolumeRequest, _blockmirror_control_v1_SplicedVolume, _blockmirror_control_v1_StageVolumeRequest__Output, _blockmirror_control_v1_SplicedVolume__Output>
  UnstageVolume: MethodDefinition<_blockmirror_control_v1_UnstageVolumeRequest, _blockmirror_control_v1_UnstageVolumeResponse, _blockmirror_control_v1_UnstageVolumeRequest__Output, _blockmirror_control_v1_UnstageVolumeResponse__Output>
  UpdatePair: MethodDefinition<_blockmirror_control_v1_UpdatePairRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_UpdatePairRequest__Output, _blockmirror_control_v1_Pair__Output>
}
