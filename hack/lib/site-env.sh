# shellcheck shell=bash
# A running site's variables (source it; it defines functions only). hack/site.sh up writes
# DIR/site.env; the scripts that act on a site (site-csi.sh, site-vm-node.sh) read it here:
# SITE_LABEL, INDEX, NETNS, NODE_IP, NODE_NAME, POD_CIDR, NODE_POD_CIDR, SANDBOX_IMAGE.

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
