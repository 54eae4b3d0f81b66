# shellcheck shell=bash
# A running site's variables and network namespace (source it with hack/lib/processes.sh;
# it defines functions only). hack/site.sh up writes DIR/site.env; the scripts that act on
# a site (site-csi.sh, site-vm-node.sh) read it here: SITE_LABEL, INDEX, NETNS, NODE_IP,
# NODE_NAME, POD_CIDR, NODE_POD_CIDR, SANDBOX_IMAGE.

# site_env DIR: sets the site's variables in the caller's shell; fails when DIR has no
# site.env (no site was started there, or it is down).
site_env() {
  [[ -f $1/site.env ]] || return 1
  # shellcheck disable=SC1091 # written by hack/site.sh up
  source "$1/site.env"
}

# in_ns CMD...: runs CMD in the site's network namespace (only the network: the mount
# namespace stays the host's, so the kubelet's and containerd's mounts are seen by both).
in_ns() { nsenter --net="/run/netns/$NETNS" -- "$@"; }

# in_ns_start DIR NAME CMD...: a long-running CMD in the site's network namespace, logging
# to DIR/NAME.log, its pid (CMD's own: nsenter execs it) in DIR/NAME.pid (start_logged of
# hack/lib/processes.sh).
in_ns_start() {
  local dir=$1 name=$2
  shift 2
  start_logged "$dir" "$name" nsenter --net="/run/netns/$NETNS" -- "$@"
}
