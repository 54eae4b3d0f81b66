# shellcheck shell=bash
# Shell helpers shared by the demo and the benchmarks (source it; it defines functions only).

# alive PID: running and not a zombie (kill -0 succeeds on an unreaped child).
alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]
}

# stop PID: SIGTERM, then SIGKILL if it is still there after 15 s.
stop() {
  local deadline=$((SECONDS + 15))
  kill -TERM "$1" 2>/dev/null || return 0
  while alive "$1"; do
    if ((SECONDS >= deadline)); then kill -KILL "$1" 2>/dev/null; break; fi
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
