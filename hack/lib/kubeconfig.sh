# shellcheck shell=bash
# Kubeconfig files for a site's API server (source it; it defines functions only): the
# site's users (hack/site.sh), external-provisioner (hack/site-csi.sh) and VM kubelets
# (hack/site-vm-node.sh).

# kubeconfig_file FILE CLUSTER SERVER CA USER CREDENTIAL... [--namespace NS]: writes FILE
# (whole, through a temporary file) with one cluster and one context, both named CLUSTER,
# for USER. CREDENTIAL is `--token TOKEN` or `--client-cert CRT --client-key KEY`.
kubeconfig_file() {
  local file=$1 cluster=$2 server=$3 ca=$4 user=$5 credential='' namespace=''
  shift 5
  while (($#)); do
    case $1 in
      --token) credential+=$'\n'"      token: $2"; shift 2 ;;
      --client-cert) credential+=$'\n'"      client-certificate: $2"; shift 2 ;;
      --client-key) credential+=$'\n'"      client-key: $2"; shift 2 ;;
      --namespace) namespace=", namespace: $2"; shift 2 ;;
      *) printf 'kubeconfig_file: unknown option %s\n' "$1" >&2; return 1 ;;
    esac
  done
  [[ -n $credential ]] || { printf 'kubeconfig_file: no credential for %s\n' "$user" >&2; return 1; }
  cat >"$file.tmp" <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: $cluster
    cluster:
      server: $server
      certificate-authority: $ca
users:
  - name: $user
    user:$credential
contexts:
  - name: $cluster
    context: { cluster: $cluster, user: $user$namespace }
current-context: $cluster
YAML
  mv "$file.tmp" "$file"
}
