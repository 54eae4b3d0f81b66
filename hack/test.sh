#!/usr/bin/env bash
# The project's test command: installs what is missing, then type-checks, lints,
# builds dist/ and runs the jest unit and acceptance projects (all via npm test).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash hack/install-deps.sh
npm test
