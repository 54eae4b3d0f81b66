#!/usr/bin/env bash
# Local blockmirror demo, no cluster needed: a sidecar serves a 1 GiB volume over
# NBD, the kernel puts ext4 on it (via nbdfuse + a loop device), files are written
# and fsck'd, and the pair status shows the blocks that are now out of sync.
# Needs root (losetup, mount). Everything lives in a temp dir removed on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=hack/lib/processes.sh
source "$ROOT/hack/lib/processes.sh"
PAIR=demo
CLI=(node "$ROOT/dist/sidecar/cli/main.js")

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (losetup and mount need it)"

log "installing dependencies and building"
bash hack/install-deps.sh
npm run --silent build

WORK=$(mktemp -d -t blockmirror-demo.XXXXXX)
FUSEDIR=$WORK/fuse
MNT=$WORK/mnt
SIDECAR_PID=
NBDFUSE_PID=
LOOP=

# Undo whatever was set up, in reverse order; each step tolerates the earlier
# steps never having happened or having failed, so any exit point is safe.
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if mountpoint -q "$MNT" 2>/dev/null; then
    umount "$MNT" 2>/dev/null || umount -l "$MNT"
  fi
  if [[ -n $LOOP ]]; then losetup -d "$LOOP" 2>/dev/null; fi
  if mountpoint -q "$FUSEDIR" 2>/dev/null; then
    # A loop device detaches asynchronously and keeps the FUSE file busy until
    # it does, so retry briefly before falling back to a lazy unmount.
    local deadline=$((SECONDS + 10))
    until fusermount3 -u "$FUSEDIR" 2>/dev/null; do
      if ((SECONDS >= deadline)); then fusermount3 -uz "$FUSEDIR"; break; fi
      sleep 0.2
    done
  fi
  # nbdfuse exits by itself once unmounted; wait so it disconnects before the sidecar stops.
  if [[ -n $NBDFUSE_PID ]]; then wait_gone "$NBDFUSE_PID" 10 || kill "$NBDFUSE_PID" 2>/dev/null; fi
  if [[ -n $SIDECAR_PID ]] && alive "$SIDECAR_PID"; then
    kill -TERM "$SIDECAR_PID"
    if wait_gone "$SIDECAR_PID" 15; then
      wait "$SIDECAR_PID"
      local src=$?
      # The contract: SIGTERM is a graceful stop with exit status 0.
      ((src == 0)) || echo "demo: warning: sidecar exited with status $src on SIGTERM" >&2
    else
      echo "demo: warning: sidecar ignored SIGTERM for 15 s; killing it" >&2
      kill -KILL "$SIDECAR_PID" 2>/dev/null
    fi
  fi
  if ((rc != 0)) && [[ -f $WORK/sidecar.log ]]; then
    printf '\ndemo failed (exit %d); last sidecar log lines:\n' "$rc" >&2
    tail -n 20 "$WORK/sidecar.log" >&2
  fi
  # --one-file-system: never delete through a mount that failed to go away.
  rm -rf --one-file-system "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_gone PID SECONDS: true once PID has exited (polled, bounded).
wait_gone() {
  local deadline=$((SECONDS + $2))
  while alive "$1"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# wait_for DESC SECONDS CMD...: polls CMD until it succeeds, failing at the deadline
# or as soon as the sidecar dies (no point waiting on a dead server).
wait_for() {
  local desc=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@"; do
    if [[ -n $SIDECAR_PID ]] && ! alive "$SIDECAR_PID"; then
      die "sidecar exited while waiting for $desc"
    fi
    ((SECONDS < deadline)) || die "timed out waiting for $desc"
    sleep 0.1
  done
}

sidecar_ready() { ready_field "$WORK/sidecar.log" control >/dev/null 2>&1; }

# status_field FIELD: a field of `pair status -o json`.
status_field() {
  "${CLI[@]}" pair status "$PAIR" --control "$CONTROL" -o json |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s)[process.argv[1]] ?? ""));' "$1"
}

log "creating a sparse 1 GiB volume in $WORK"
truncate -s 1G "$WORK/volume.img"
mkdir -p "$FUSEDIR" "$MNT" "$WORK/state"

log "starting the sidecar"
"${CLI[@]}" sidecar --state-dir "$WORK/state" --allow-volume-prefix "$WORK" \
  --control-listen 127.0.0.1:0 --peer-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  >"$WORK/sidecar.log" 2>&1 &
SIDECAR_PID=$!
wait_for "the sidecar to log 'sidecar ready'" 30 sidecar_ready
CONTROL=$(ready_field "$WORK/sidecar.log" control)
echo "control $CONTROL, peer $(ready_field "$WORK/sidecar.log" peer), metrics $(ready_field "$WORK/sidecar.log" metrics)"

log "creating pair '$PAIR' (primary) with an NBD export on 127.0.0.1"
"${CLI[@]}" pair create "$PAIR" --control "$CONTROL" --volume "$WORK/volume.img" \
  --role primary --nbd-listen 127.0.0.1:0
NBD_ADDR=$(status_field nbdAddress)
[[ $NBD_ADDR == *:* ]] || die "pair status reports no nbdAddress (got '$NBD_ADDR')"
echo "NBD export '$PAIR' at $NBD_ADDR"

log "attaching the export as a block device (nbdfuse + loop)"
# The pidfile is written only once nbdfuse has connected and is serving.
nbdfuse -P "$WORK/nbdfuse.pid" "$FUSEDIR" "nbd://$NBD_ADDR/$PAIR" 2>"$WORK/nbdfuse.log" &
NBDFUSE_PID=$!
nbdfuse_ready() {
  alive "$NBDFUSE_PID" || die "nbdfuse exited: $(cat "$WORK/nbdfuse.log")"
  [[ -s $WORK/nbdfuse.pid && -e $FUSEDIR/nbd ]]
}
wait_for "nbdfuse to connect" 30 nbdfuse_ready
LOOP=$(losetup --find --show "$FUSEDIR/nbd")
echo "loop device $LOOP -> $FUSEDIR/nbd"

log "making ext4 and writing files"
mkfs.ext4 -q "$LOOP"
mount "$LOOP" "$MNT"
cp -r /usr/share/common-licenses "$MNT/"
head -c 8M /dev/urandom >"$MNT/random.bin"
(cd "$WORK" && sha256sum mnt/random.bin >random.sha256)
sync
df -h "$MNT"
umount "$MNT"

log "reading it back through the export: fsck.ext4 -n, then a checksum"
fsck.ext4 -n "$LOOP"
mount -o ro "$LOOP" "$MNT"
(cd "$WORK" && sha256sum -c random.sha256)
umount "$MNT"

log "blockmirror pair status $PAIR"
"${CLI[@]}" pair status "$PAIR" --control "$CONTROL"

log "blockmirror pair status $PAIR -o json"
"${CLI[@]}" pair status "$PAIR" --control "$CONTROL" -o json

log "demo finished; cleaning up"
