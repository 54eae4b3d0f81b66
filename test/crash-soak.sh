#!/usr/bin/env bash
# The full crash soak of issue 15: 100 iterations per mode (sync; async with a two-volume
# consistency group) of kill -9, power cuts (drop and torn) of either side and link faults,
# on blockmirror-crashfs. The test command runs 20 per mode; this is the long run whose
# result goes into a closing note. Usage: bash test/crash-soak.sh [ITERATIONS] [SEED]
# Prints the report (JSON: faults dealt, writes acknowledged, bytes the cuts dropped,
# prefix checks, convergence times) and writes it to $SOAK_REPORT (default
# /tmp/blockmirror-soak.json). Needs what the test command installs (run it once).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export SOAK_ITERATIONS="${1:-100}"
export SOAK_SEED="${2:-$((RANDOM * 32768 + RANDOM))}"
export SOAK_REPORT="${SOAK_REPORT:-/tmp/blockmirror-soak.json}"
bash hack/build-crashfs.sh >/dev/null
npm run build >/dev/null
echo "crash soak: $SOAK_ITERATIONS iterations per mode, seed $SOAK_SEED"
node --experimental-vm-modules node_modules/jest/bin/jest.js --selectProjects acceptance \
  --testPathPatterns 'test/crash-soak' --testTimeout $((SOAK_ITERATIONS * 60000))
node -e '
const r = JSON.parse(require("fs").readFileSync(process.env.SOAK_REPORT, "utf8"));
for (const m of r) {
  const { log, ...summary } = m;
  console.log(JSON.stringify(summary));
}'
