# shellcheck shell=bash
# The test bed's KubeProxyConfiguration (source it; it defines functions only): host nodes
# (hack/site.sh) and VM nodes (hack/site-vm-node.sh) differ only in the values passed in.

# kube_proxy_config FILE KUBECONFIG NODE_NAME NODE_IP CLUSTER_CIDR [--shared-conntrack]:
# writes FILE: iptables mode, serving on NODE_IP and node ports on NODE_IP only. With
# --shared-conntrack the node shares its kernel (and so the conntrack table) with the
# host, whose settings kube-proxy then leaves alone.
kube_proxy_config() {
  cat >"$1" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $2
mode: iptables
hostnameOverride: $3
bindAddress: $4
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $5
nodePortAddresses: ["$4/32"]
YAML
  case ${6:-} in
    '') ;;
    --shared-conntrack)
      cat >>"$1" <<'YAML'
# The conntrack table is the kernel's, shared with the host: leave its settings alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
      ;;
    *) printf 'kube_proxy_config: unknown option %s\n' "$6" >&2; return 1 ;;
  esac
}
