# shellcheck shell=bash
# Shell helpers shared by the demo, the benchmarks and the site scripts (source it; it
# defines functions only).

# alive PID: running and not a zombie (kill -0 succeeds on an unreaped child).
alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]
}

# stop PID [SECONDS]: SIGTERM, then SIGKILL if it is still there after SECONDS (default 15).
stop() {
  local deadline=$((SECONDS + ${2:-15}))
  kill -TERM "$1" 2>/dev/null || return 0
  while alive "$1"; do
    if ((SECONDS >= deadline)); then kill -KILL "$1" 2>/dev/null || true; break; fi
    sleep 0.1
  done
}

# start_logged DIR NAME CMD...: CMD in the background, its output in DIR/NAME.log, its pid
# in DIR/NAME.pid. A simple command in the background: bash forks and execs CMD, so $! is
# CMD's own pid (and, with CMD `nsenter ... -- PROG`, PROG's: nsenter execs it). A shell
# function as CMD would leave a subshell's pid instead.
start_logged() {
  local dir=$1 name=$2
  shift 2
  "$@" </dev/null >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

# pidfile_alive FILE: FILE exists and names a running process.
pidfile_alive() {
  [[ -f $1 ]] && alive "$(cat "$1")"
}

# stop_pidfile FILE MARK [SECONDS]: stops (as `stop`) the process FILE names if it is still
# the one started: its command line contains MARK (a directory only its processes name), so
# a pid reused since by another process is left alone. Then removes FILE.
stop_pidfile() {
  local f=$1 pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -F -- "$2" >/dev/null; then
    stop "$pid" "${3:-15}"
  fi
  rm -f "$f"
}

# wait_until DIR WHAT SECONDS PIDNAMES CMD...: polls CMD until it succeeds. Fails through
# the caller's `die` when a process named in PIDNAMES (space separated, started with
# start_logged DIR) exits, with its log's last lines, or when SECONDS pass, with the last
# lines of every DIR/*.log.
wait_until() {
  local dir=$1 what=$2 secs=$3 names=$4 deadline n
  shift 4
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    for n in $names; do
      alive "$(cat "$dir/$n.pid")" || { tail -n 30 "$dir/$n.log" >&2; die "$n exited while waiting for $what"; }
    done
    ((SECONDS < deadline)) || { tail -n 30 "$dir"/*.log >&2; die "$what not reached after $secs s (logs in $dir)"; }
    sleep 0.1
  done
}

# ready_field LOG FIELD: a field of the sidecar's "sidecar ready" JSON log line.
ready_field() {
  node -e '
    const [file, field] = process.argv.slice(1);
    for (const line of require("fs").readFileSync(file, "utf8").split("\n")) {
      try {
        const rec = JSON.parse(line);
        if (rec.message === "sidecar ready") { console.log(rec[field] ?? ""); process.exit(0); }
      } catch { /* not a JSON line */ }
    }
    process.exit(1);
  ' "$1" "$2"
}

# show_logs DIR: the last lines of every non-empty *.log in DIR, on stderr (after a failure).
show_logs() {
  local f
  for f in "$1"/*.log; do
    [[ -s $f ]] && { printf '\n--- last lines of %s\n' "${f##*/}" >&2; tail -n 15 "$f" >&2; }
  done
  return 0
}
