import { beforeAll, describe, expect, it } from '@jest/globals';
import type { PackageDefinition } from '@grpc/proto-loader';
import { loadCsiProto } from '../grpc/load-proto.js';
import { findCsiMethod } from './csi-call.js';
import { resolveCsiProtoDir } from './resolve-csi-proto-dir.js';

describe('findCsiMethod', () => {
  let def: PackageDefinition;
  beforeAll(async () => {
    def = loadCsiProto(await resolveCsiProtoDir()).definition;
  });

  it('finds a unary method by its name, with or without its service', () => {
    for (const name of ['NodeStageVolume', 'Node.NodeStageVolume', 'csi.v1.Node/NodeStageVolume', '/csi.v1.Node/NodeStageVolume', 'csi.v1.Node.NodeStageVolume']) {
      expect(findCsiMethod(def, name).path).toBe('/csi.v1.Node/NodeStageVolume');
    }
    expect(findCsiMethod(def, 'GetPluginInfo').path).toBe('/csi.v1.Identity/GetPluginInfo');
  });

  it('refuses unknown and streaming methods', () => {
    expect(() => findCsiMethod(def, 'NodeStage')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    // SnapshotMetadata's RPCs stream their responses.
    expect(() => findCsiMethod(def, 'GetMetadataAllocated')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
