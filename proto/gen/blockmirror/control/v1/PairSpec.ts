// Original file: blockmirror/control/v1/control.proto

import type { Role as _blockmirror_control_v1_Role, Role__Output as _blockmirror_control_v1_Role__Output } from '../../../blockmirror/control/v1/Role.js';
import type { Mode as _blockmirror_control_v1_Mode, Mode__Output as _blockmirror_control_v1_Mode__Output } from '../../../blockmirror/control/v1/Mode.js';
import type { PeerTls as _blockmirror_control_v1_PeerTls, PeerTls__Output as _blockmirror_control_v1_PeerTls__Output } from '../../../blockmirror/control/v1/PeerTls.js';
import type { Lineage as _blockmirror_control_v1_Lineage, Lineage__Output as _blockmirror_control_v1_Lineage__Output } from '../../../blockmirror/control/v1/Lineage.js';
import type { Long } from '@grpc/proto-loader';

export interface PairSpec {
  'name'?: (string);
  'volumePath'?: (string);
  'role'?: (_blockmirror_control_v1_Role);
  'mode'?: (_blockmirror_control_v1_Mode);
  'peerAddress'?: (string);
  'nbdListen'?: (string);
  'nbdSocket'?: (string);
  'blockSize'?: (number);
  'peerPair'?: (string);
  'writeTimeoutMs'?: (number);
  'resyncBytesPerSecond'?: (number | string | Long);
  'groupIntervalMs'?: (number);
  'maxCoordinationMs'?: (number);
  'maxDrainMs'?: (number);
  'consistencyGroup'?: (string);
  'peerTls'?: (_blockmirror_control_v1_PeerTls | null);
  'peerTlsFingerprint'?: (string);
  'lineage'?: (_blockmirror_control_v1_Lineage | null);
  'remoteIdentity'?: (string);
}

export interface PairSpec__Output {
  'name': (string);
  'volumePath': (string);
  'role': (_blockmirror_control_v1_Role__Output);
  'mode': (_blockmirror_control_v1_Mode__Output);
  'peerAddress': (string);
  'nbdListen': (string);
  'nbdSocket': (string);
  'blockSize': (number);
  'peerPair': (string);
  'writeTimeoutMs': (number);
  'resyncBytesPerSecond': (number);
  'groupIntervalMs': (number);
  'maxCoordinationMs': (number);
  'maxDrainMs': (number);
  'consistencyGroup': (string);
  'peerTls': (_blockmirror_control_v1_PeerTls__Output | null);
  'peerTlsFingerprint': (string);
  'lineage': (_blockmirror_control_v1_Lineage__Output | null);
  'remoteIdentity': (string);
}
