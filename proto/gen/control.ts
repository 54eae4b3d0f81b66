import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { AttachVolumeRequest as _blockmirror_control_v1_AttachVolumeRequest, AttachVolumeRequest__Output as _blockmirror_control_v1_AttachVolumeRequest__Output } from './blockmirror/control/v1/AttachVolumeRequest.js';
import type { ControlServiceClient as _blockmirror_control_v1_ControlServiceClient, ControlServiceDefinition as _blockmirror_control_v1_ControlServiceDefinition } from './blockmirror/control/v1/ControlService.js';
import type { CreatePairRequest as _blockmirror_control_v1_CreatePairRequest, CreatePairRequest__Output as _blockmirror_control_v1_CreatePairRequest__Output } from './blockmirror/control/v1/CreatePairRequest.js';
import type { DeletePairRequest as _blockmirror_control_v1_DeletePairRequest, DeletePairRequest__Output as _blockmirror_control_v1_DeletePairRequest__Output } from './blockmirror/control/v1/DeletePairRequest.js';
import type { DeletePairResponse as _blockmirror_control_v1_DeletePairResponse, DeletePairResponse__Output as _blockmirror_control_v1_DeletePairResponse__Output } from './blockmirror/control/v1/DeletePairResponse.js';
import type { DemotePairRequest as _blockmirror_control_v1_DemotePairRequest, DemotePairRequest__Output as _blockmirror_control_v1_DemotePairRequest__Output } from './blockmirror/control/v1/DemotePairRequest.js';
import type { DetachVolumeRequest as _blockmirror_control_v1_DetachVolumeRequest, DetachVolumeRequest__Output as _blockmirror_control_v1_DetachVolumeRequest__Output } from './blockmirror/control/v1/DetachVolumeRequest.js';
import type { DiscardMyDataRequest as _blockmirror_control_v1_DiscardMyDataRequest, DiscardMyDataRequest__Output as _blockmirror_control_v1_DiscardMyDataRequest__Output } from './blockmirror/control/v1/DiscardMyDataRequest.js';
import type { FenceVolumeRequest as _blockmirror_control_v1_FenceVolumeRequest, FenceVolumeRequest__Output as _blockmirror_control_v1_FenceVolumeRequest__Output } from './blockmirror/control/v1/FenceVolumeRequest.js';
import type { FencedVolume as _blockmirror_control_v1_FencedVolume, FencedVolume__Output as _blockmirror_control_v1_FencedVolume__Output } from './blockmirror/control/v1/FencedVolume.js';
import type { GetFencedVolumeRequest as _blockmirror_control_v1_GetFencedVolumeRequest, GetFencedVolumeRequest__Output as _blockmirror_control_v1_GetFencedVolumeRequest__Output } from './blockmirror/control/v1/GetFencedVolumeRequest.js';
import type { GetPairRequest as _blockmirror_control_v1_GetPairRequest, GetPairRequest__Output as _blockmirror_control_v1_GetPairRequest__Output } from './blockmirror/control/v1/GetPairRequest.js';
import type { Lineage as _blockmirror_control_v1_Lineage, Lineage__Output as _blockmirror_control_v1_Lineage__Output } from './blockmirror/control/v1/Lineage.js';
import type { ListFencedVolumesRequest as _blockmirror_control_v1_ListFencedVolumesRequest, ListFencedVolumesRequest__Output as _blockmirror_control_v1_ListFencedVolumesRequest__Output } from './blockmirror/control/v1/ListFencedVolumesRequest.js';
import type { ListFencedVolumesResponse as _blockmirror_control_v1_ListFencedVolumesResponse, ListFencedVolumesResponse__Output as _blockmirror_control_v1_ListFencedVolumesResponse__Output } from './blockmirror/control/v1/ListFencedVolumesResponse.js';
import type { ListPairsRequest as _blockmirror_control_v1_ListPairsRequest, ListPairsRequest__Output as _blockmirror_control_v1_ListPairsRequest__Output } from './blockmirror/control/v1/ListPairsRequest.js';
import type { ListPairsResponse as _blockmirror_control_v1_ListPairsResponse, ListPairsResponse__Output as _blockmirror_control_v1_ListPairsResponse__Output } from './blockmirror/control/v1/ListPairsResponse.js';
import type { ListVolumesRequest as _blockmirror_control_v1_ListVolumesRequest, ListVolumesRequest__Output as _blockmirror_control_v1_ListVolumesRequest__Output } from './blockmirror/control/v1/ListVolumesRequest.js';
import type { ListVolumesResponse as _blockmirror_control_v1_ListVolumesResponse, ListVolumesResponse__Output as _blockmirror_control_v1_ListVolumesResponse__Output } from './blockmirror/control/v1/ListVolumesResponse.js';
import type { Pair as _blockmirror_control_v1_Pair, Pair__Output as _blockmirror_control_v1_Pair__Output } from './blockmirror/control/v1/Pair.js';
import type { PairSpec as _blockmirror_control_v1_PairSpec, PairSpec__Output as _blockmirror_control_v1_PairSpec__Output } from './blockmirror/control/v1/PairSpec.js';
import type { PairStatus as _blockmirror_control_v1_PairStatus, PairStatus__Output as _blockmirror_control_v1_PairStatus__Output } from './blockmirror/control/v1/PairStatus.js';
import type { PausePairRequest as _blockmirror_control_v1_PausePairRequest, PausePairRequest__Output as _blockmirror_control_v1_PausePairRequest__Output } from './blockmirror/control/v1/PausePairRequest.js';
import type { PeerTls as _blockmirror_control_v1_PeerTls, PeerTls__Output as _blockmirror_control_v1_PeerTls__Output } from './blockmirror/control/v1/PeerTls.js';
import type { PromotePairRequest as _blockmirror_control_v1_PromotePairRequest, PromotePairRequest__Output as _blockmirror_control_v1_PromotePairRequest__Output } from './blockmirror/control/v1/PromotePairRequest.js';
import type { ReportFencedVolumeRequest as _blockmirror_control_v1_ReportFencedVolumeRequest, ReportFencedVolumeRequest__Output as _blockmirror_control_v1_ReportFencedVolumeRequest__Output } from './blockmirror/control/v1/ReportFencedVolumeRequest.js';
import type { ResumePairRequest as _blockmirror_control_v1_ResumePairRequest, ResumePairRequest__Output as _blockmirror_control_v1_ResumePairRequest__Output } from './blockmirror/control/v1/ResumePairRequest.js';
import type { SplicedVolume as _blockmirror_control_v1_SplicedVolume, SplicedVolume__Output as _blockmirror_control_v1_SplicedVolume__Output } from './blockmirror/control/v1/SplicedVolume.js';
import type { StageVolumeRequest as _blockmirror_control_v1_StageVolumeRequest, StageVolumeRequest__Output as _blockmirror_control_v1_StageVolumeRequest__Output } from './blockmirror/control/v1/StageVolumeRequest.js';
import type { UnfenceVolumeRequest as _blockmirror_control_v1_UnfenceVolumeRequest, UnfenceVolumeRequest__Output as _blockmirror_control_v1_UnfenceVolumeRequest__Output } from './blockmirror/control/v1/UnfenceVolumeRequest.js';
import type { UnfenceVolumeResponse as _blockmirror_control_v1_UnfenceVolumeResponse, UnfenceVolumeResponse__Output as _blockmirror_control_v1_UnfenceVolumeResponse__Output } from './blockmirror/control/v1/UnfenceVolumeResponse.js';
import type { UnstageVolumeRequest as _blockmirror_control_v1_UnstageVolumeRequest, UnstageVolumeRequest__Output as _blockmirror_control_v1_UnstageVolumeRequest__Output } from './blockmirror/control/v1/UnstageVolumeRequest.js';
import type { UnstageVolumeResponse as _blockmirror_control_v1_UnstageVolumeResponse, UnstageVolumeResponse__Output as _blockmirror_control_v1_UnstageVolumeResponse__Output } from './blockmirror/control/v1/UnstageVolumeResponse.js';
import type { UpdatePairRequest as _blockmirror_control_v1_UpdatePairRequest, UpdatePairRequest__Output as _blockmirror_control_v1_UpdatePairRequest__Output } from './blockmirror/control/v1/UpdatePairRequest.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  blockmirror: {
    control: {
      v1: {
        AttachVolumeRequest: MessageTypeDefinition<_blockmirror_control_v1_AttachVolumeRequest, _blockmirror_control_v1_AttachVolumeRequest__Output>
        ControlService: SubtypeConstructor<typeof grpc.Client, _blockmirror_control_v1_ControlServiceClient> & { service: _blockmirror_control_v1_ControlServiceDefinition }
        CreatePairRequest: MessageTypeDefinition<_blockmirror_control_v1_CreatePairRequest, _blockmirror_control_v1_CreatePairRequest__Output>
        DeletePairRequest: MessageTypeDefinition<_blockmirror_control_v1_DeletePairRequest, _blockmirror_control_v1_DeletePairRequest__Output>
        DeletePairResponse: MessageTypeDefinition<_blockmirror_control_v1_DeletePairResponse, _blockmirror_control_v1_DeletePairResponse__Output>
        DemotePairRequest: MessageTypeDefinition<_blockmirror_control_v1_DemotePairRequest, _blockmirror_control_v1_DemotePairRequest__Output>
        DetachVolumeRequest: MessageTypeDefinition<_blockmirror_control_v1_DetachVolumeRequest, _blockmirror_control_v1_DetachVolumeRequest__Output>
        DiscardMyDataRequest: MessageTypeDefinition<_blockmirror_control_v1_DiscardMyDataRequest, _blockmirror_control_v1_DiscardMyDataRequest__Output>
        FenceVolumeRequest: MessageTypeDefinition<_blockmirror_control_v1_FenceVolumeRequest, _blockmirror_control_v1_FenceVolumeRequest__Output>
        FencedVolume: MessageTypeDefinition<_blockmirror_control_v1_FencedVolume, _blockmirror_control_v1_FencedVolume__Output>
        GetFencedVolumeRequest: MessageTypeDefinition<_blockmirror_control_v1_GetFencedVolumeRequest, _blockmirror_control_v1_GetFencedVolumeRequest__Output>
        GetPairRequest: MessageTypeDefinition<_blockmirror_control_v1_GetPairRequest, _blockmirror_control_v1_GetPairRequest__Output>
        Lineage: MessageTypeDefinition<_blockmirror_control_v1_Lineage, _blockmirror_control_v1_Lineage__Output>
        ListFencedVolumesRequest: MessageTypeDefinition<_blockmirror_control_v1_ListFencedVolumesRequest, _blockmirror_control_v1_ListFencedVolumesRequest__Output>
        ListFencedVolumesResponse: MessageTypeDefinition<_blockmirror_control_v1_ListFencedVolumesResponse, _blockmirror_control_v1_ListFencedVolumesResponse__Output>
        ListPairsRequest: MessageTypeDefinition<_blockmirror_control_v1_ListPairsRequest, _blockmirror_control_v1_ListPairsRequest__Output>
        ListPairsResponse: MessageTypeDefinition<_blockmirror_control_v1_ListPairsResponse, _blockmirror_control_v1_ListPairsResponse__Output>
        ListVolumesRequest: MessageTypeDefinition<_blockmirror_control_v1_ListVolumesRequest, _blockmirror_control_v1_ListVolumesRequest__Output>
        ListVolumesResponse: MessageTypeDefinition<_blockmirror_control_v1_ListVolumesResponse, _blockmirror_control_v1_ListVolumesResponse__Output>
        Mode: EnumTypeDefinition
        Pair: MessageTypeDefinition<_blockmirror_control_v1_Pair, _blockmirror_control_v1_Pair__Output>
        PairSpec: MessageTypeDefinition<_blockmirror_control_v1_PairSpec, _blockmirror_control_v1_PairSpec__Output>
        PairState: EnumTypeDefinition
        PairStatus: MessageTypeDefinition<_blockmirror_control_v1_PairStatus, _blockmirror_control_v1_PairStatus__Output>
        PausePairRequest: MessageTypeDefinition<_blockmirror_control_v1_PausePairRequest, _blockmirror_control_v1_PausePairRequest__Output>
        PeerTls: MessageTypeDefinition<_blockmirror_control_v1_PeerTls, _blockmirror_control_v1_PeerTls__Output>
        PromotePairRequest: MessageTypeDefinition<_blockmirror_control_v1_PromotePairRequest, _blockmirror_control_v1_PromotePairRequest__Output>
        ReportFencedVolumeRequest: MessageTypeDefinition<_blockmirror_control_v1_ReportFencedVolumeRequest, _blockmirror_control_v1_ReportFencedVolumeRequest__Output>
        ResumePairRequest: MessageTypeDefinition<_blockmirror_control_v1_ResumePairRequest, _blockmirror_control_v1_ResumePairRequest__Output>
        Role: EnumTypeDefinition
        SplicedVolume: MessageTypeDefinition<_blockmirror_control_v1_SplicedVolume, _blockmirror_control_v1_SplicedVolume__Output>
        StageVolumeRequest: MessageTypeDefinition<_blockmirror_control_v1_StageVolumeRequest, _blockmirror_control_v1_StageVolumeRequest__Output>
        UnfenceVolumeRequest: MessageTypeDefinition<_blockmirror_control_v1_UnfenceVolumeRequest, _blockmirror_control_v1_UnfenceVolumeRequest__Output>
        UnfenceVolumeResponse: MessageTypeDefinition<_blockmirror_control_v1_UnfenceVolumeResponse, _blockmirror_control_v1_UnfenceVolumeResponse__Output>
        UnstageVolumeRequest: MessageTypeDefinition<_blockmirror_control_v1_UnstageVolumeRequest, _blockmirror_control_v1_UnstageVolumeRequest__Output>
        UnstageVolumeResponse: MessageTypeDefinition<_blockmirror_control_v1_UnstageVolumeResponse, _blockmirror_control_v1_UnstageVolumeResponse__Output>
        UpdatePairRequest: MessageTypeDefinition<_blockmirror_control_v1_UpdatePairRequest, _blockmirror_control_v1_UpdatePairRequest__Output>
      }
    }
  }
}

