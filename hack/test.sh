#!/usr/bin/env bash
# The project's test command: installs what is missing, then type-checks, lints,
# builds dist/ and runs the jest unit and acceptance projects (all via npm test) on the
# machine's Node; then the unit tests and the sidecar-process suites again on the
# current Node LTS, which the images ship.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash hack/install-deps.sh
# Test-only tool: the power-cut filesystem the crash tests run the sidecars on.
bash hack/build-crashfs.sh >/dev/null
# Test-only for now (the lab will use them later): what the real nodes of the cluster
# tests run (containerd, runc, the CNI plugins; the kube binaries come with install-deps)
# and what the chart's images are built with; then the images themselves, built from the
# Dockerfile into a cache keyed by their inputs, and the small test images.
bash hack/install-node-runtime.sh
bash hack/build-images.sh >/dev/null
bash hack/build-test-images.sh >/dev/null
# Test-only for now: external-provisioner for the lab CSI driver on those nodes (hack/site-csi.sh).
bash hack/install-csi-provisioner.sh >/dev/null
npm test

lts=$(bash hack/node-lts.sh)
echo "== again on Node $("$lts" --version): unit tests (sidecar and operator), CLI, crash safety, slab reads"
# Acceptance tests spawn the sidecar with the running Node (process.execPath).
"$lts" --experimental-vm-modules node_modules/jest/bin/jest.js --selectProjects unit acceptance \
  --testPathPatterns 'sidecar/|operator/|proto/|test/cli|test/crash-safety'
