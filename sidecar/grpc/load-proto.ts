import { loadPackageDefinition, type GrpcObject } from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProtoGrpcType as ControlProto } from '../../proto/gen/control.js';
import type { ProtoGrpcType as ReplicationProto } from '../../proto/gen/replication.js';
import type { ProtoGrpcType as CsiGrpcType } from '../../proto/gen/csi.js';
import type { ProtoGrpcType as PluginRegistrationGrpcType } from '../../proto/gen/plugin-registration.js';

/** The proto/ folder, found from this file both in the sources and in dist/. */
function protoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      readFileSync(join(dir, 'proto', 'loader-options.json'));
      return join(dir, 'proto');
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error('proto/ folder not found');
}

const root = protoRoot();
// The same options the type generator used (hack/gen-proto.mjs): the generated types
// describe exactly what this loader returns.
const fileOptions = JSON.parse(readFileSync(join(root, 'loader-options.json'), 'utf8')) as { longs: string; enums: string } & Omit<Options, 'longs' | 'enums'>;
// proto-loader takes the String/Number constructors, the JSON file their names.
const options: Options = {
  ...fileOptions,
  longs: fileOptions.longs === 'Number' ? Number : String,
  enums: fileOptions.enums === 'String' ? String : undefined,
  includeDirs: [root],
};

function load<T>(file: string): T {
  return loadPackageDefinition(loadSync(file, options)) as GrpcObject as unknown as T;
}

export function loadControlProto(): ControlProto {
  return load<ControlProto>('blockmirror/control/v1/control.proto');
}

export function loadReplicationProto(): ReplicationProto {
  return load<ReplicationProto>('blockmirror/replication/v1/replication.proto');
}

/** A .proto that lives in a pinned Go module, not in this repository. */
export interface GoModulePin {
  module: string;
  version: string;
}

/** The pinned Go module that carries the CSI spec's csi.proto (proto/csi-spec.json). */
export function csiSpecPin(): GoModulePin {
  return JSON.parse(readFileSync(join(root, 'csi-spec.json'), 'utf8')) as GoModulePin;
}

/**
 * The pinned Go module (k8s.io/kubelet, the release the kubelet is built from) that
 * carries the kubelet's plugin registration API, and the file's path in it
 * (proto/plugin-registration.json).
 */
export function pluginRegistrationPin(): GoModulePin & { file: string } {
  return JSON.parse(readFileSync(join(root, 'plugin-registration.json'), 'utf8')) as GoModulePin & { file: string };
}

export interface CsiProto {
  /** Typed constructors and service definitions (proto/gen/csi.ts). */
  grpc: CsiGrpcType;
  /** The loader's own definition: method paths and (de)serializers by service name. */
  definition: PackageDefinition;
}

/**
 * Loads csi.proto from `specDir`, the folder of the pinned spec module (see
 * sidecar/csi/resolve-csi-proto-dir.ts), with the options its types were generated with.
 */
export function loadCsiProto(specDir: string): CsiProto {
  const definition = loadSync('csi.proto', { ...options, includeDirs: [specDir] });
  return { grpc: loadPackageDefinition(definition) as GrpcObject as unknown as CsiGrpcType, definition };
}

/** The kubelet's plugin registration API (`pluginregistration.Registration`), from its pinned api.proto. */
export type PluginRegistrationProto = PluginRegistrationGrpcType;

/**
 * Loads api.proto (package pluginregistration) from `dir`, the folder holding it (see
 * sidecar/csi/resolve-plugin-registration-proto-dir.ts), with the options its types were
 * generated with.
 */
export function loadPluginRegistrationProto(dir: string): PluginRegistrationProto {
  return loadPackageDefinition(loadSync('api.proto', { ...options, includeDirs: [dir] })) as GrpcObject as unknown as PluginRegistrationProto;
}
