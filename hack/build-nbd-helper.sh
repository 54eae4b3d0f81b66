#!/usr/bin/env bash
# Builds blockmirror-nbd (sidecar/native/nbd-netlink), the netlink helper the node
# splice drives the kernel's NBD client with, into a cache keyed by its sources, and
# prints its path. Idempotent: nothing is rebuilt while the sources are unchanged.
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/lib/go-tool.sh
source "$HACK/lib/go-tool.sh"
build_go_tool blockmirror-nbd "$HACK/../sidecar/native/nbd-netlink"
