# shellcheck shell=bash
# Timing of the site scripts' progress lines (source it; it defines functions only).

# now: the time in microseconds (a start for secs_since).
now() { printf '%s' "${EPOCHREALTIME/./}"; }

# secs_since START: seconds since START (from `now`), with two decimals: 12.34.
secs_since() {
  local us=$(($(now) - $1))
  printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000))
}
