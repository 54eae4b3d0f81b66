# shellcheck shell=bash
# build_go_tool NAME SRC_DIR: builds the Go main package in SRC_DIR into the tool cache,
# keyed by a hash of its module files and sources (rebuilt only when they change), points
# the stable name CACHE/NAME at it and prints that path. The temp name is per process:
# test workers may build the same tool at the same time.
build_go_tool() {
  local name=$1 src=$2
  local cache="${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/tools"
  local hash out
  hash=$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go | sha256sum | cut -c1-16)
  out="$cache/$name-$hash"
  if [[ ! -x "$out" ]]; then
    mkdir -p "$cache"
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp.$$" .)
    mv "$out.tmp.$$" "$out"
    echo "$name: built $out" >&2
  fi
  ln -sfn "$out" "$cache/$name"
  echo "$cache/$name"
}
