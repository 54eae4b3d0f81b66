# shellcheck shell=bash
# The pod network of a test-bed node (source it; it defines functions only): host nodes
# (hack/site.sh) and VM nodes (hack/site-vm-node.sh) alike.

# cni_conflist FILE NAME SUBNET [IPAM_DIR]: writes FILE, the CNI network NAME: a bridge cni0
# with masquerading to the node's address, host-local addresses from SUBNET (the node's
# pod CIDR; allocations kept in IPAM_DIR when given, else host-local's default), hostPorts.
cni_conflist() {
  local data_dir=''
  [[ -z ${4:-} ]] || data_dir=$'\n'"        \"dataDir\": \"$4\","
  cat >"$1" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$2",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",$data_dir
        "ranges": [[{ "subnet": "$3" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
}
