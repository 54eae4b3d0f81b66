# Shared by the scripts that run inside the VM (hack/vm.sh), sourced after they set:
#   TAG   prefix of their progress lines ("TAG: ...", which the tests read)
#   CLI   the blockmirror command line
#   A     the primary sidecar's control address, PAIR the pair the state helpers ask about
# Optional: FAIL_LOG, a log whose tail a failure prints.
say() { echo "$TAG: $*"; }
fail() {
  echo "$TAG: FAILED: $*"
  [ -z "${FAIL_LOG:-}" ] || tail -n 30 "$FAIL_LOG" | sed "s|^|$TAG:   $(basename "$FAIL_LOG"): |"
  exit 1
}
# A field of the "sidecar ready" JSON log line, wherever it sits in the line.
ready_field() { grep '"message":"sidecar ready"' "$1" | head -n 1 | sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p"; }
# Waits (up to 2 minutes) for a JSON log line with this message.
wait_log() {
  i=0
  until grep -q "\"message\":\"$2\"" "$1"; do i=$((i + 1)); [ $i -lt 1200 ] || fail "$1: no '$2'"; sleep 0.1; done
}
state() { $CLI pair status "$PAIR" --control "$A" -o json 2>/dev/null | sed -n 's/.*"state": *"\([A-Za-z]*\)".*/\1/p'; }
# Waits (up to WAIT_STATE_S seconds, default 300) for the pair's state.
wait_state() {
  i=0
  until [ "$(state)" = "$1" ]; do i=$((i + 1)); [ $i -lt $((${WAIT_STATE_S:-300} * 4)) ] || fail "pair never reached $1 (now $(state))"; sleep 0.25; done
}
