// Original file: blockmirror/control/v1/control.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AttachVolumeRequest as _blockmirror_control_v1_AttachVolumeRequest, AttachVolumeRequest__Output as _blockmirror_control_v1_AttachVolumeRequest__Output } from '../../../blockmirror/control/v1/AttachVolumeRequest.js';
import type { CreatePairRequest as _blockmirror_control_v1_CreatePairRequest, CreatePairRequest__Output as _blockmirror_control_v1_CreatePairRequest__Output } from '../../../blockmirror/control/v1/CreatePairRequest.js';
import type { DeletePairRequest as _blockmirror_control_v1_DeletePairRequest, DeletePairRequest__Output as _blockmirror_control_v1_DeletePairRequest__Output } from '../../../blockmirror/control/v1/DeletePairRequest.js';
import type { DeletePairResponse as _blockmirror_control_v1_DeletePairResponse, DeletePairResponse__Output as _blockmirror_control_v1_DeletePairResponse__Output } from '../../../blockmirror/control/v1/DeletePairResponse.js';
import type { DemotePairRequest as _blockmirror_control_v1_DemotePairRequest, DemotePairRequest__Output as _blockmirror_control_v1_DemotePairRequest__Output } from '../../../blockmirror/control/v1/DemotePairRequest.js';
import type { DetachVolumeRequest as _blockmirror_control_v1_DetachVolumeRequest, DetachVolumeRequest__Output as _blockmirror_control_v1_DetachVolumeRequest__Output } from '../../../blockmirror/control/v1/DetachVolumeRequest.js';
import type { DiscardMyDataRequest as _blockmirror_control_v1_DiscardMyDataRequest, DiscardMyDataRequest__Output as _blockmirror_control_v1_DiscardMyDataRequest__Output } from '../../../blockmirror/control/v1/DiscardMyDataRequest.js';
import type { FenceVolumeRequest as _blockmirror_control_v1_FenceVolumeRequest, FenceVolumeRequest__Output as _blockmirror_control_v1_FenceVolumeRequest__Output } from '../../../blockmirror/control/v1/FenceVolumeRequest.js';
import type { FencedVolume as _blockmirror_control_v1_FencedVolume, FencedVolume__Output as _blockmirror_control_v1_FencedVolume__Output } from '../../../blockmirror/control/v1/FencedVolume.js';
import type { GetFencedVolumeRequest as _blockmirror_control_v1_GetFencedVolumeRequest, GetFencedVolumeRequest__Output as _blockmirror_control_v1_GetFencedVolumeRequest__Output } from '../../../blockmirror/control/v1/GetFencedVolumeRequest.js';
import type { GetPairRequest as _blockmirror_control_v1_GetPairRequest, GetPairRequest__Output as _blockmirror_control_v1_GetPairRequest__Output } from '../../../blockmirror/control/v1/GetPairRequest.js';
import type { ListFencedVolumesRequest as _blockmirror_control_v1_ListFencedVolumesRequest, ListFencedVolumesRequest__Output as _blockmirror_control_v1_ListFencedVolumesRequest__Output } from '../../../blockmirror/control/v1/ListFencedVolumesRequest.js';
import type { ListFencedVolumesResponse as _blockmirror_control_v1_ListFencedVolumesResponse, ListFencedVolumesResponse__Output as _blockmirror_control_v1_ListFencedVolumesResponse__Output } from '../../../blockmirror/control/v1/ListFencedVolumesResponse.js';
import type { ListPairsRequest as _blockmirror_control_v1_ListPairsRequest, ListPairsRequest__Output as _blockmirror_control_v1_ListPairsRequest__Output } from '../../../blockmirror/control/v1/ListPairsRequest.js';
import type { ListPairsResponse as _blockmirror_control_v1_ListPairsResponse, ListPairsResponse__Output as _blockmirror_control_v1_ListPairsResponse__Output } from '../../../blockmirror/control/v1/ListPairsResponse.js';
import type { ListVolumesRequest as _blockmirror_control_v1_ListVolumesRequest, ListVolumesRequest__Output as _blockmirror_control_v1_ListVolumesRequest__Output } from '../../../blockmirror/control/v1/ListVolumesRequest.js';
import type { ListVolumesResponse as _blockmirror_control_v1_ListVolumesResponse, ListVolumesResponse__Output as _blockmirror_control_v1_ListVolumesResponse__Output } from '../../../blockmirror/control/v1/ListVolumesResponse.js';
import type { Pair as _blockmirror_control_v1_Pair, Pair__Output as _blockmirror_control_v1_Pair__Output } from '../../../blockmirror/control/v1/Pair.js';
import type { PausePairRequest as _blockmirror_control_v1_PausePairRequest, PausePairRequest__Output as _blockmirror_control_v1_PausePairRequest__Output } from '../../../blockmirror/control/v1/PausePairRequest.js';
import type { PromotePairRequest as _blockmirror_control_v1_PromotePairRequest, PromotePairRequest__Output as _blockmirror_control_v1_PromotePairRequest__Output } from '../../../blockmirror/control/v1/PromotePairRequest.js';
import type { ReportFencedVolumeRequest as _blockmirror_control_v1_ReportFencedVolumeRequest, ReportFencedVolumeRequest__Output as _blockmirror_control_v1_ReportFencedVolumeRequest__Output } from '../../../blockmirror/control/v1/ReportFencedVolumeRequest.js';
import type { ResumePairRequest as _blockmirror_control_v1_ResumePairRequest, ResumePairRequest__Output as _blockmirror_control_v1_ResumePairRequest__Output } from '../../../blockmirror/control/v1/ResumePairRequest.js';
import type { SplicedVolume as _blockmirror_control_v1_SplicedVolume, SplicedVolume__Output as _blockmirror_control_v1_SplicedVolume__Output } from '../../../blockmirror/control/v1/SplicedVolume.js';
import type { StageVolumeRequest as _blockmirror_control_v1_StageVolumeRequest, StageVolumeRequest__Output as _blockmirror_control_v1_StageVolumeRequest__Output } from '../../../blockmirror/control/v1/StageVolumeRequest.js';
import type { UnfenceVolumeRequest as _blockmirror_control_v1_UnfenceVolumeRequest, UnfenceVolumeRequest__Output as _blockmirror_control_v1_UnfenceVolumeRequest__Output } from '../../../blockmirror/control/v1/UnfenceVolumeRequest.js';
import type { UnfenceVolumeResponse as _blockmirror_control_v1_UnfenceVolumeResponse, UnfenceVolumeResponse__Output as _blockmirror_control_v1_UnfenceVolumeResponse__Output } from '../../../blockmirror/control/v1/UnfenceVolumeResponse.js';
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
  
  DemotePair(argument: _blockmirror_control_v1_DemotePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  DemotePair(argument: _blockmirror_control_v1_DemotePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  DemotePair(argument: _blockmirror_control_v1_DemotePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  DemotePair(argument: _blockmirror_control_v1_DemotePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  demotePair(argument: _blockmirror_control_v1_DemotePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  demotePair(argument: _blockmirror_control_v1_DemotePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  demotePair(argument: _blockmirror_control_v1_DemotePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  demotePair(argument: _blockmirror_control_v1_DemotePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  
  DetachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  DetachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  DetachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  DetachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  detachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  detachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  detachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  detachVolume(argument: _blockmirror_control_v1_DetachVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_SplicedVolume__Output>): grpc.ClientUnaryCall;
  
  DiscardMyData(argument: _blockmirror_control_v1_DiscardMyDataRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  DiscardMyData(argument: _blockmirror_control_v1_DiscardMyDataRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  DiscardMyData(argument: _blockmirror_control_v1_DiscardMyDataRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  DiscardMyData(argument: _blockmirror_control_v1_DiscardMyDataRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  discardMyData(argument: _blockmirror_control_v1_DiscardMyDataRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  discardMyData(argument: _blockmirror_control_v1_DiscardMyDataRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  discardMyData(argument: _blockmirror_control_v1_DiscardMyDataRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  discardMyData(argument: _blockmirror_control_v1_DiscardMyDataRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  
  FenceVolume(argument: _blockmirror_control_v1_FenceVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  FenceVolume(argument: _blockmirror_control_v1_FenceVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  FenceVolume(argument: _blockmirror_control_v1_FenceVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  FenceVolume(argument: _blockmirror_control_v1_FenceVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  fenceVolume(argument: _blockmirror_control_v1_FenceVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  fenceVolume(argument: _blockmirror_control_v1_FenceVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  fenceVolume(argument: _blockmirror_control_v1_FenceVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  fenceVolume(argument: _blockmirror_control_v1_FenceVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  
  GetFencedVolume(argument: _blockmirror_control_v1_GetFencedVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  GetFencedVolume(argument: _blockmirror_control_v1_GetFencedVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  GetFencedVolume(argument: _blockmirror_control_v1_GetFencedVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  GetFencedVolume(argument: _blockmirror_control_v1_GetFencedVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  getFencedVolume(argument: _blockmirror_control_v1_GetFencedVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  getFencedVolume(argument: _blockmirror_control_v1_GetFencedVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  getFencedVolume(argument: _blockmirror_control_v1_GetFencedVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  getFencedVolume(argument: _blockmirror_control_v1_GetFencedVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  
  GetPair(argument: _blockmirror_control_v1_GetPairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  GetPair(argument: _blockmirror_control_v1_GetPairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  GetPair(argument: _blockmirror_control_v1_GetPairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  GetPair(argument: _blockmirror_control_v1_GetPairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  getPair(argument: _blockmirror_control_v1_GetPairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  getPair(argument: _blockmirror_control_v1_GetPairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  getPair(argument: _blockmirror_control_v1_GetPairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  getPair(argument: _blockmirror_control_v1_GetPairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  
  ListFencedVolumes(argument: _blockmirror_control_v1_ListFencedVolumesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_ListFencedVolumesResponse__Output>): grpc.ClientUnaryCall;
  ListFencedVolumes(argument: _blockmirror_control_v1_ListFencedVolumesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_ListFencedVolumesResponse__Output>): grpc.ClientUnaryCall;
  ListFencedVolumes(argument: _blockmirror_control_v1_ListFencedVolumesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_ListFencedVolumesResponse__Output>): grpc.ClientUnaryCall;
  ListFencedVolumes(argument: _blockmirror_control_v1_ListFencedVolumesRequest, callback: grpc.requestCallback<_blockmirror_control_v1_ListFencedVolumesResponse__Output>): grpc.ClientUnaryCall;
  listFencedVolumes(argument: _blockmirror_control_v1_ListFencedVolumesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_ListFencedVolumesResponse__Output>): grpc.ClientUnaryCall;
  listFencedVolumes(argument: _blockmirror_control_v1_ListFencedVolumesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_ListFencedVolumesResponse__Output>): grpc.ClientUnaryCall;
  listFencedVolumes(argument: _blockmirror_control_v1_ListFencedVolumesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_ListFencedVolumesResponse__Output>): grpc.ClientUnaryCall;
  listFencedVolumes(argument: _blockmirror_control_v1_ListFencedVolumesRequest, callback: grpc.requestCallback<_blockmirror_control_v1_ListFencedVolumesResponse__Output>): grpc.ClientUnaryCall;
  
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
  
  PromotePair(argument: _blockmirror_control_v1_PromotePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  PromotePair(argument: _blockmirror_control_v1_PromotePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  PromotePair(argument: _blockmirror_control_v1_PromotePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  PromotePair(argument: _blockmirror_control_v1_PromotePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  promotePair(argument: _blockmirror_control_v1_PromotePairRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  promotePair(argument: _blockmirror_control_v1_PromotePairRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  promotePair(argument: _blockmirror_control_v1_PromotePairRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  promotePair(argument: _blockmirror_control_v1_PromotePairRequest, callback: grpc.requestCallback<_blockmirror_control_v1_Pair__Output>): grpc.ClientUnaryCall;
  
  ReportFencedVolume(argument: _blockmirror_control_v1_ReportFencedVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  ReportFencedVolume(argument: _blockmirror_control_v1_ReportFencedVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  ReportFencedVolume(argument: _blockmirror_control_v1_ReportFencedVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  ReportFencedVolume(argument: _blockmirror_control_v1_ReportFencedVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  reportFencedVolume(argument: _blockmirror_control_v1_ReportFencedVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  reportFencedVolume(argument: _blockmirror_control_v1_ReportFencedVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  reportFencedVolume(argument: _blockmirror_control_v1_ReportFencedVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  reportFencedVolume(argument: _blockmirror_control_v1_ReportFencedVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_FencedVolume__Output>): grpc.ClientUnaryCall;
  
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
  
  UnfenceVolume(argument: _blockmirror_control_v1_UnfenceVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_UnfenceVolumeResponse__Output>): grpc.ClientUnaryCall;
  UnfenceVolume(argument: _blockmirror_control_v1_UnfenceVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_UnfenceVolumeResponse__Output>): grpc.ClientUnaryCall;
  UnfenceVolume(argument: _blockmirror_control_v1_UnfenceVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_UnfenceVolumeResponse__Output>): grpc.ClientUnaryCall;
  UnfenceVolume(argument: _blockmirror_control_v1_UnfenceVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_UnfenceVolumeResponse__Output>): grpc.ClientUnaryCall;
  unfenceVolume(argument: _blockmirror_control_v1_UnfenceVolumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_UnfenceVolumeResponse__Output>): grpc.ClientUnaryCall;
  unfenceVolume(argument: _blockmirror_control_v1_UnfenceVolumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_blockmirror_control_v1_UnfenceVolumeResponse__Output>): grpc.ClientUnaryCall;
  unfenceVolume(argument: _blockmirror_control_v1_UnfenceVolumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_blockmirror_control_v1_UnfenceVolumeResponse__Output>): grpc.ClientUnaryCall;
  unfenceVolume(argument: _blockmirror_control_v1_UnfenceVolumeRequest, callback: grpc.requestCallback<_blockmirror_control_v1_UnfenceVolumeResponse__Output>): grpc.ClientUnaryCall;
  
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
  
  DemotePair: grpc.handleUnaryCall<_blockmirror_control_v1_DemotePairRequest__Output, _blockmirror_control_v1_Pair>;
  
  DetachVolume: grpc.handleUnaryCall<_blockmirror_control_v1_DetachVolumeRequest__Output, _blockmirror_control_v1_SplicedVolume>;
  
  DiscardMyData: grpc.handleUnaryCall<_blockmirror_control_v1_DiscardMyDataRequest__Output, _blockmirror_control_v1_Pair>;
  
  FenceVolume: grpc.handleUnaryCall<_blockmirror_control_v1_FenceVolumeRequest__Output, _blockmirror_control_v1_FencedVolume>;
  
  GetFencedVolume: grpc.handleUnaryCall<_blockmirror_control_v1_GetFencedVolumeRequest__Output, _blockmirror_control_v1_FencedVolume>;
  
  GetPair: grpc.handleUnaryCall<_blockmirror_control_v1_GetPairRequest__Output, _blockmirror_control_v1_Pair>;
  
  ListFencedVolumes: grpc.handleUnaryCall<_blockmirror_control_v1_ListFencedVolumesRequest__Output, _blockmirror_control_v1_ListFencedVolumesResponse>;
  
  ListPairs: grpc.handleUnaryCall<_blockmirror_control_v1_ListPairsRequest__Output, _blockmirror_control_v1_ListPairsResponse>;
  
  ListVolumes: grpc.handleUnaryCall<_blockmirror_control_v1_ListVolumesRequest__Output, _blockmirror_control_v1_ListVolumesResponse>;
  
  PausePair: grpc.handleUnaryCall<_blockmirror_control_v1_PausePairRequest__Output, _blockmirror_control_v1_Pair>;
  
  PromotePair: grpc.handleUnaryCall<_blockmirror_control_v1_PromotePairRequest__Output, _blockmirror_control_v1_Pair>;
  
  ReportFencedVolume: grpc.handleUnaryCall<_blockmirror_control_v1_ReportFencedVolumeRequest__Output, _blockmirror_control_v1_FencedVolume>;
  
  ResumePair: grpc.handleUnaryCall<_blockmirror_control_v1_ResumePairRequest__Output, _blockmirror_control_v1_Pair>;
  
  StageVolume: grpc.handleUnaryCall<_blockmirror_control_v1_StageVolumeRequest__Output, _blockmirror_control_v1_SplicedVolume>;
  
  UnfenceVolume: grpc.handleUnaryCall<_blockmirror_control_v1_UnfenceVolumeRequest__Output, _blockmirror_control_v1_UnfenceVolumeResponse>;
  
  UnstageVolume: grpc.handleUnaryCall<_blockmirror_control_v1_UnstageVolumeRequest__Output, _blockmirror_control_v1_UnstageVolumeResponse>;
  
  UpdatePair: grpc.handleUnaryCall<_blockmirror_control_v1_UpdatePairRequest__Output, _blockmirror_control_v1_Pair>;
  
}

export interface ControlServiceDefinition extends grpc.ServiceDefinition {
  AttachVolume: MethodDefinition<_blockmirror_control_v1_AttachVolumeRequest, _blockmirror_control_v1_SplicedVolume, _blockmirror_control_v1_AttachVolumeRequest__Output, _blockmirror_control_v1_SplicedVolume__Output>
  CreatePair: MethodDefinition<_blockmirror_control_v1_CreatePairRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_CreatePairRequest__Output, _blockmirror_control_v1_Pair__Output>
  DeletePair: MethodDefinition<_blockmirror_control_v1_DeletePairRequest, _blockmirror_control_v1_DeletePairResponse, _blockmirror_control_v1_DeletePairRequest__Output, _blockmirror_control_v1_DeletePairResponse__Output>
  DemotePair: MethodDefinition<_blockmirror_control_v1_DemotePairRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_DemotePairRequest__Output, _blockmirror_control_v1_Pair__Output>
  DetachVolume: MethodDefinition<_blockmirror_control_v1_DetachVolumeRequest, _blockmirror_control_v1_SplicedVolume, _blockmirror_control_v1_DetachVolumeRequest__Output, _blockmirror_control_v1_SplicedVolume__Output>
  DiscardMyData: MethodDefinition<_blockmirror_control_v1_DiscardMyDataRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_DiscardMyDataRequest__Output, _blockmirror_control_v1_Pair__Output>
  FenceVolume: MethodDefinition<_blockmirror_control_v1_FenceVolumeRequest, _blockmirror_control_v1_FencedVolume, _blockmirror_control_v1_FenceVolumeRequest__Output, _blockmirror_control_v1_FencedVolume__Output>
  GetFencedVolume: MethodDefinition<_blockmirror_control_v1_GetFencedVolumeRequest, _blockmirror_control_v1_FencedVolume, _blockmirror_control_v1_GetFencedVolumeRequest__Output, _blockmirror_control_v1_FencedVolume__Output>
  GetPair: MethodDefinition<_blockmirror_control_v1_GetPairRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_GetPairRequest__Output, _blockmirror_control_v1_Pair__Output>
  ListFencedVolumes: MethodDefinition<_blockmirror_control_v1_ListFencedVolumesRequest, _blockmirror_control_v1_ListFencedVolumesResponse, _blockmirror_control_v1_ListFencedVolumesRequest__Output, _blockmirror_control_v1_ListFencedVolumesResponse__Output>
  ListPairs: MethodDefinition<_blockmirror_control_v1_ListPairsRequest, _blockmirror_control_v1_ListPairsResponse, _blockmirror_control_v1_ListPairsRequest__Output, _blockmirror_control_v1_ListPairsResponse__Output>
  ListVolumes: MethodDefinition<_blockmirror_control_v1_ListVolumesRequest, _blockmirror_control_v1_ListVolumesResponse, _blockmirror_control_v1_ListVolumesRequest__Output, _blockmirror_control_v1_ListVolumesResponse__Output>
  PausePair: MethodDefinition<_blockmirror_control_v1_PausePairRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_PausePairRequest__Output, _blockmirror_control_v1_Pair__Output>
  PromotePair: MethodDefinition<_blockmirror_control_v1_PromotePairRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_PromotePairRequest__Output, _blockmirror_control_v1_Pair__Output>
  ReportFencedVolume: MethodDefinition<_blockmirror_control_v1_ReportFencedVolumeRequest, _blockmirror_control_v1_FencedVolume, _blockmirror_control_v1_ReportFencedVolumeRequest__Output, _blockmirror_control_v1_FencedVolume__Output>
  ResumePair: MethodDefinition<_blockmirror_control_v1_ResumePairRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_ResumePairRequest__Output, _blockmirror_control_v1_Pair__Output>
  StageVolume: MethodDefinition<_blockmirror_control_v1_StageVolumeRequest, _blockmirror_control_v1_SplicedVolume, _blockmirror_control_v1_StageVolumeRequest__Output, _blockmirror_control_v1_SplicedVolume__Output>
  UnfenceVolume: MethodDefinition<_blockmirror_control_v1_UnfenceVolumeRequest, _blockmirror_control_v1_UnfenceVolumeResponse, _blockmirror_control_v1_UnfenceVolumeRequest__Output, _blockmirror_control_v1_UnfenceVolumeResponse__Output>
  UnstageVolume: MethodDefinition<_blockmirror_control_v1_UnstageVolumeRequest, _blockmirror_control_v1_UnstageVolumeResponse, _blockmirror_control_v1_UnstageVolumeRequest__Output, _blockmirror_control_v1_UnstageVolumeResponse__Output>
  UpdatePair: MethodDefinition<_blockmirror_control_v1_UpdatePairRequest, _blockmirror_control_v1_Pair, _blockmirror_control_v1_UpdatePairRequest__Output, _blockmirror_control_v1_Pair__Output>
}
