#!/usr/bin/env bash
# The disaster-recovery drill (run as root): a real database through every role change a
# user makes with `kubectl patch`, printing RPO and RTO. Two sites, each a real control
# plane (etcd, kube-apiserver) with the chart installed and its own operator and sidecar
# (authenticated with the chart's ServiceAccount tokens), the peer link through a proxy
# per direction that the drill cuts. The database is SQLite in WAL mode with
# synchronous=FULL (examples/database/sqlite-writer.mjs, every commit printed) on ext4 on
# the primary's export (nbdfuse + loop). In sync and in async mode (500 ms groups):
#
#   1. planned switchover to B and back: the application stopped, A demoted (its export
#      refuses writes, everything shipped), B promoted; the database opened on B, commits
#      made there, and home again the same way;
#   2. forced failover: A's sidecar killed mid-commit, the link cut, A's mount lost; B
#      promoted with forcePromote, the database opened there (journal and WAL replayed);
#      A returns, demotes itself and is fenced, takes the union of changes from B
#      (failback), and a planned switchover brings the application home.
#
# RPO: acknowledged commits the promoted side does not hold (sync: 0; async: those after
# the consistency point it was promoted at). RTO: from the `kubectl patch` that promotes
# to the first write the promoted side's export accepts. Bytes shipped per direction.
#
# The drill is test/database-failover.test.ts run alone, so each figure it prints is also
# asserted (every commit found, the database sound on each side, each direction well under
# 5 % of the volume, the volumes byte-identical at the end). About 2 minutes once set up.
#
# The lab's database pod (hack/lab.sh) cannot take this drill yet: its volume is a CSI
# volume spliced on site A's VM node, a CSI role change still recreates the pair (a full
# copy), and site B's host node has no device-mapper to splice a promoted volume. See the
# README, "The disaster-recovery drill".
#
# Usage: hack/drill.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
die() { printf 'drill: %s\n' "$*" >&2; exit 1; }
((EUID == 0)) || die "run as root: the drill mounts filesystems on loop devices"

# What the drill needs and nothing more: the Debian tools (nbdfuse, qemu-io, e2fsprogs),
# node_modules, the kube binaries and helm; the build; Node 24 for node:sqlite.
bash hack/install-deps.sh
npm run --silent build
bash hack/node-lts.sh >/dev/null

LOG=$(mktemp -t blockmirror-drill.XXXXXX)
trap 'rm -f "$LOG"' EXIT
printf 'drill: running (the full log: %s, kept on failure)\n' "$LOG"
if ! node --experimental-vm-modules node_modules/jest/bin/jest.js --selectProjects acceptance \
  --testPathPatterns 'test/database-failover' >"$LOG" 2>&1; then
  trap - EXIT
  tail -n 60 "$LOG" >&2
  die "the drill failed; the full log is $LOG"
fi
# The figures: the block the test prints when it ends.
awk '/^database failover:/ { on = 1; print; next } on && /^  / { print; next } on { exit }' "$LOG"
grep -E '^(Tests|Time):' "$LOG"
