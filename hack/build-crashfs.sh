#!/usr/bin/env bash
# Builds blockmirror-crashfs (test/crashfs), the in-memory FUSE filesystem the power-cut
# tests put volumes and state directories on, into a cache keyed by its sources, and
# prints its path. Idempotent: nothing is rebuilt while the sources are unchanged.
# Test-only: the test command runs it, install-deps.sh (which the lab also runs) does not.
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../test/crashfs" && pwd)"
CACHE="${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/tools"
hash=$(cat "$SRC"/go.mod "$SRC"/go.sum "$SRC"/*.go | sha256sum | cut -c1-16)
out="$CACHE/blockmirror-crashfs-$hash"
if [[ ! -x "$out" ]]; then
  mkdir -p "$CACHE"
  (cd "$SRC" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp.$$" .)
  # Per-process temp name: test workers may build at the same time.
  mv "$out.tmp.$$" "$out"
  echo "build-crashfs: built $out" >&2
fi
# A stable name for scripts and tests.
ln -sfn "$out" "$CACHE/blockmirror-crashfs"
echo "$CACHE/blockmirror-crashfs"
