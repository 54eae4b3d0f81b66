#!/usr/bin/env bash
# Builds blockmirror-crashfs (test/crashfs), the in-memory FUSE filesystem the power-cut
# tests put volumes and state directories on, into a cache keyed by its sources, and
# prints its path. Idempotent: nothing is rebuilt while the sources are unchanged.
# Test-only: the test command runs it, install-deps.sh (which the lab also runs) does not.
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/lib/go-tool.sh
source "$HACK/lib/go-tool.sh"
build_go_tool blockmirror-crashfs "$HACK/../test/crashfs"
