#!/usr/bin/env bash
# The database's transactions per second on the VM node, side by side in one run: the
# lab's SQLite writer (every commit fsync'd) unthrottled, with its volume's pair in sync
# mode, paused (detached: the splice maps the volume directly), in async mode, and the same
# pod on an unspliced volume of the lab CSI driver. Ratios against the unspliced volume;
# TCG emulation makes the absolute numbers meaningless. Runs the whole lab (hack/lab.sh,
# as root) and its benchmark phase; BENCH_SECONDS (default 30) is each window.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LAB_BENCH=1 exec bash hack/lab.sh
