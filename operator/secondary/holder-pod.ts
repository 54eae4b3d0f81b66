import { createHash } from 'node:crypto';
import type { ReplicationPair } from '../api/replication-pair.js';
import type { PodManifest } from '../kube/kube-client.js';

/** What every holder pod carries: `kubectl get pods -l app.kubernetes.io/component=secondary-holder`. */
export const HOLDER_COMPONENT = 'secondary-holder';
/** The pair a holder pod serves (its name; the namespace is the pod's own). */
export const HOLDER_PAIR_LABEL = 'blockmirror.io/secondary-of';

export interface HolderPodOptions {
  /** An image with a POSIX shell and sleep: the chart passes the sidecar's, which every node has. */
  image: string;
  pullPolicy: 'Always' | 'IfNotPresent' | 'Never';
}

/** The holder pod's name: stable for the pair, short whatever the pair's name. */
export function holderPodName(pair: ReplicationPair): string {
  const hash = createHash('sha256').update(`${pair.metadata.namespace}/${pair.metadata.name}`).digest('hex').slice(0, 10);
  return `blockmirror-secondary-${hash}`;
}

/**
 * The pod that makes the kubelet stage a secondary's CSI volume (a CSI volume is a
 * device on a node only while a pod there uses it). It mounts the claim read-only, so
 * the CSI proxy publishes an empty placeholder into it and holds the raw device for the
 * pair; it runs nothing but a shell waiting for its stop signal, as an unprivileged user
 * with no token, no capabilities and a read-only root. The scheduler places it where the
 * volume's topology allows; owned by the pair, it goes with it.
 */
export function holderPod(pair: ReplicationPair, claim: string, volumeMode: 'Filesystem' | 'Block', opts: HolderPodOptions): PodManifest {
  const { namespace, name, uid } = pair.metadata;
  const volume = 'secondary';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: holderPodName(pair),
      namespace,
      labels: {
        'app.kubernetes.io/name': 'blockmirror',
        'app.kubernetes.io/component': HOLDER_COMPONENT,
        'app.kubernetes.io/managed-by': 'blockmirror-operator',
        // A label value has at most 63 characters; the annotation has the whole name.
        [HOLDER_PAIR_LABEL]: name.length <= 63 ? name : name.slice(0, 63).replace(/[-.]+$/, ''),
      },
      annotations: {
        'blockmirror.io/replication-pair': `${namespace}/${name}`,
        'blockmirror.io/purpose': `keeps the secondary volume of replication pair ${namespace}/${name} (claim ${claim}) staged on its node for the pair to write to; it sees an empty read-only placeholder. Deleting it pauses nothing: the operator makes it again. Delete the pair instead.`,
      },
      ...(uid !== undefined ? { ownerReferences: [{ apiVersion: pair.apiVersion, kind: pair.kind, name, uid, controller: true }] } : {}),
    },
    spec: {
      restartPolicy: 'Always',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 5,
      securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'hold',
          image: opts.image,
          imagePullPolicy: opts.pullPolicy,
          command: ['sh', '-c', 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'],
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
          resources: { requests: { cpu: '1m', memory: '8Mi' }, limits: { memory: '32Mi' } },
          ...(volumeMode === 'Block' ? { volumeDevices: [{ name: volume, devicePath: '/dev/secondary' }] } : { volumeMounts: [{ name: volume, mountPath: '/secondary', readOnly: true }] }),
        },
      ],
      volumes: [{ name: volume, persistentVolumeClaim: { claimName: claim, readOnly: true } }],
    },
  };
}
