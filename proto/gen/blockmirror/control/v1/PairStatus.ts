// Original file: blockmirror/control/v1/control.proto

import type { PairState as _blockmirror_control_v1_PairState, PairState__Output as _blockmirror_control_v1_PairState__Output } from '../../../blockmirror/control/v1/PairState.js';
import type { Long } from '@grpc/proto-loader';

export interface PairStatus {
  'state'?: (_blockmirror_control_v1_PairState);
  'volumeBytes'?: (number | string | Long);
  'outOfSyncBytes'?: (number | string | Long);
  'dirtyBlocks'?: (number | string | Long);
  'resyncProgressPercent'?: (number | string);
  'lastInSyncTimeMs'?: (number | string | Long);
  'retries'?: (number | string | Long);
  'lastError'?: (string);
  'bytesWritten'?: (number | string | Long);
  'bytesRead'?: (number | string | Long);
  'writeOps'?: (number | string | Long);
  'readOps'?: (number | string | Long);
  'nbdConnections'?: (number);
  'nbdAddress'?: (string);
  'nbdSocket'?: (string);
  'volumePath'?: (string);
  'bytesOnWire'?: (number | string | Long);
  'bytesReplicated'?: (number | string | Long);
  'lastConsistencyPointTimeMs'?: (number | string | Long);
  'rpoSeconds'?: (number | string);
  'groupsFormed'?: (number | string | Long);
  'groupsFailed'?: (number | string | Long);
  'coordinationHoldP50Ms'?: (number | string);
  'coordinationHoldP99Ms'?: (number | string);
  'coordinationHoldMaxMs'?: (number | string);
  'groupsDeferred'?: (number | string | Long);
  'replicationErrors'?: (number | string | Long);
  'generation'?: (string);
  'bitmapGeneration'?: (string);
  'historyGenerations'?: (string)[];
  'peerGeneration'?: (string);
  'fenced'?: (boolean);
  'consistent'?: (boolean);
  'primaryDemoted'?: (boolean);
  'discardMyData'?: (boolean);
  'promotedTimeMs'?: (number | string | Long);
  'promotedPointTimeMs'?: (number | string | Long);
  'peerVerdict'?: (string);
}

export interface PairStatus__Output {
  'state': (_blockmirror_control_v1_PairState__Output);
  'volumeBytes': (number);
  'outOfSyncBytes': (number);
  'dirtyBlocks': (number);
  'resyncProgressPercent': (number);
  'lastInSyncTimeMs': (number);
  'retries': (number);
  'lastError': (string);
  'bytesWritten': (number);
  'bytesRead': (number);
  'writeOps': (number);
  'readOps': (number);
  'nbdConnections': (number);
  'nbdAddress': (string);
  'nbdSocket': (string);
  'volumePath': (string);
  'bytesOnWire': (number);
  'bytesReplicated': (number);
  'lastConsistencyPointTimeMs': (number);
  'rpoSeconds': (number);
  'groupsFormed': (number);
  'groupsFailed': (number);
  'coordinationHoldP50Ms': (number);
  'coordinationHoldP99Ms': (number);
  'coordinationHoldMaxMs': (number);
  'groupsDeferred': (number);
  'replicationErrors': (number);
  'generation': (string);
  'bitmapGeneration': (string);
  'historyGenerations': (string)[];
  'peerGeneration': (string);
  'fenced': (boolean);
  'consistent': (boolean);
  'primaryDemoted': (boolean);
  'discardMyData': (boolean);
  'promotedTimeMs': (number);
  'promotedPointTimeMs': (number);
  'peerVerdict': (string);
}
