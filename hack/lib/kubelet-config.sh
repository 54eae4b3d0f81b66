# shellcheck shell=bash
# The test bed's KubeletConfiguration (source it; it defines functions only): one for the
# host nodes of hack/site.sh and the VM nodes of hack/site-vm-node.sh, which differ only
# in the paths and addresses passed in, and in the host's cgroup v1.

# kubelet_config FILE OPTION...: writes FILE. Options (each takes a value unless said):
#   --address IP             the node's address: the kubelet serves on IP:10250
#   --runtime-endpoint URL   containerd's CRI socket (unix://...)
#   --client-ca FILE         the site's CA: callers' client certificates (the API server's)
#   --resolv-conf FILE       the pods' resolv.conf
#   --volume-plugin-dir DIR  flexvolume plugins (none; the kubelet wants the directory)
#   --pod-cidr CIDR          the node's pod range
#   --pod-logs-dir DIR       optional: where pods' logs go (default /var/log/pods)
#   --cgroup-v1              no value: the host runs cgroup v1 only, which the kubelet
#                            refuses unless told (failCgroupV1: false)
kubelet_config() {
  local file=$1 address='' endpoint='' client_ca='' resolv='' plugins='' pod_cidr='' pod_logs='' cgroup_v1=''
  shift
  while (($#)); do
    case $1 in
      --address) address=$2; shift 2 ;;
      --runtime-endpoint) endpoint=$2; shift 2 ;;
      --client-ca) client_ca=$2; shift 2 ;;
      --resolv-conf) resolv=$2; shift 2 ;;
      --volume-plugin-dir) plugins=$2; shift 2 ;;
      --pod-cidr) pod_cidr=$2; shift 2 ;;
      --pod-logs-dir) pod_logs=$2; shift 2 ;;
      --cgroup-v1) cgroup_v1=1; shift ;;
      *) printf 'kubelet_config: unknown option %s\n' "$1" >&2; return 1 ;;
    esac
  done
  local v
  for v in address endpoint client_ca resolv plugins pod_cidr; do
    [[ -n ${!v} ]] || { printf 'kubelet_config: --%s is required\n' "${v//_/-}" >&2; return 1; }
  done
  {
    printf '%s\n' 'apiVersion: kubelet.config.k8s.io/v1beta1' 'kind: KubeletConfiguration'
    if [[ -n $cgroup_v1 ]]; then
      printf '%s\n' '# This host has cgroup v1 only, no systemd: cgroupfs, no QoS or node-allocatable cgroups.' \
        'failCgroupV1: false'
    fi
    cat <<YAML
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
containerRuntimeEndpoint: $endpoint
address: $address
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $client_ca }
authorization:
  mode: Webhook
clusterDomain: cluster.local
resolvConf: $resolv
YAML
    [[ -z $pod_logs ]] || printf 'podLogsDir: %s\n' "$pod_logs"
    cat <<YAML
volumePluginDir: $plugins
podCIDR: $pod_cidr
hairpinMode: hairpin-veth
serializeImagePulls: false
# Imported images are never pulled again: never collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
syncFrequency: 10s
nodeStatusReportFrequency: 10s
YAML
  } >"$file"
}
