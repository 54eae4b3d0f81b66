/**
 * A pod running `script` (sh -c) in `image` with claim `claimName` mounted at /data:
 * the shape of the tests' writers and readers.
 */
export function claimPod(o: { name: string; claimName: string; image: string; script: string; namespace?: string }): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace: o.namespace ?? 'default' },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'main', image: o.image, imagePullPolicy: 'Never', command: ['sh', '-c', o.script], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: o.claimName } }],
    },
  };
}
