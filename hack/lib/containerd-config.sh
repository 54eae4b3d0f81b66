# shellcheck shell=bash
# The test bed's containerd configuration (source it; it defines functions only): one for
# the host nodes of hack/site.sh and the VM nodes of hack/site-vm-node.sh. No registry
# section at all: images are imported, never pulled.

# containerd_config FILE OPTION...: writes FILE. Options (each takes a value unless said):
#   --root DIR, --state DIR   containerd's root and state
#   --socket FILE             its gRPC socket (the kubelet's runtime endpoint)
#   --opt-dir DIR             the opt plugin's directory
#   --sandbox-image REF       the pause image, imported beforehand
#   --cni-bin DIR, --cni-conf-dir DIR
#   Host nodes share one host with other sites' containerds, so they also pass:
#   --ttrpc-socket FILE       instead of the default /run/containerd/containerd.sock.ttrpc
#   --runc-root DIR           runc's state, instead of the default /run/containerd/runc
#   --netns-under-state       no value: pods' network namespaces under --state, not /var/run/netns
#   --restrict-oom-score-adj  no value: the host withholds CAP_SYS_RESOURCE
containerd_config() {
  local file=$1 root='' state='' socket='' opt='' sandbox='' cni_bin='' cni_conf='' ttrpc='' runc_root=''
  local netns_under_state='' restrict_oom=''
  shift
  while (($#)); do
    case $1 in
      --root) root=$2; shift 2 ;;
      --state) state=$2; shift 2 ;;
      --socket) socket=$2; shift 2 ;;
      --opt-dir) opt=$2; shift 2 ;;
      --sandbox-image) sandbox=$2; shift 2 ;;
      --cni-bin) cni_bin=$2; shift 2 ;;
      --cni-conf-dir) cni_conf=$2; shift 2 ;;
      --ttrpc-socket) ttrpc=$2; shift 2 ;;
      --runc-root) runc_root=$2; shift 2 ;;
      --netns-under-state) netns_under_state=1; shift ;;
      --restrict-oom-score-adj) restrict_oom=1; shift ;;
      *) printf 'containerd_config: unknown option %s\n' "$1" >&2; return 1 ;;
    esac
  done
  local v
  for v in root state socket opt sandbox cni_bin cni_conf; do
    [[ -n ${!v} ]] || { printf 'containerd_config: a value for %s is required\n' "$v" >&2; return 1; }
  done
  {
    cat <<TOML
version = 2
root = "$root"
state = "$state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$socket"

TOML
    [[ -z $ttrpc ]] || printf '[ttrpc]\n  address = "%s"\n\n' "$ttrpc"
    cat <<TOML
[plugins."io.containerd.internal.v1.opt"]
  path = "$opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox"
TOML
    [[ -z $netns_under_state ]] || printf '  netns_mounts_under_state_dir = true\n'
    printf '  disable_apparmor = true\n  enable_selinux = false\n'
    [[ -z $restrict_oom ]] || cat <<'TOML'
  # The host withholds CAP_SYS_RESOURCE: runc cannot lower a sandbox's oom_score_adj
  # below containerd's own (-998 for sandboxes fails), so it is clamped there.
  restrict_oom_score_adj = true
TOML
    cat <<'TOML'
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
TOML
    [[ -z $runc_root ]] || printf '        Root = "%s"\n' "$runc_root"
    cat <<TOML
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$cni_conf"
    max_conf_num = 1
TOML
  } >"$file"
}
