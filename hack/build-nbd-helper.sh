#!/usr/bin/env bash
# Builds blockmirror-nbd (sidecar/native/nbd-netlink), the netlink helper the node
# splice drives the kernel's NBD client with, into a cache keyed by its sources, and
# prints its path. Idempotent: nothing is rebuilt while the sources are unchanged.
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../sidecar/native/nbd-netlink" && pwd)"
CACHE="${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/tools"
hash=$(cat "$SRC"/go.mod "$SRC"/go.sum "$SRC"/*.go | sha256sum | cut -c1-16)
out="$CACHE/blockmirror-nbd-$hash"
if [[ ! -x "$out" ]]; then
  mkdir -p "$CACHE"
  (cd "$SRC" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp" .)
  mv "$out.tmp" "$out"
  echo "build-nbd-helper: built $out" >&2
fi
# A stable name for scripts and tests.
ln -sfn "$out" "$CACHE/blockmirror-nbd"
echo "$CACHE/blockmirror-nbd"
