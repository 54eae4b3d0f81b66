#!/usr/bin/env bash
# The project's test command: installs what is missing, then type-checks, lints,
# builds dist/ and runs the jest unit and acceptance projects (all via npm test) on the
# machine's Node; then the unit tests and the sidecar-process suites again on the
# current Node LTS, which the images ship.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Shared with the lab (hack/lab.sh): the Debian packages, node_modules, the kube binaries
# and helm, the CSI protos; what the real nodes run (containerd, runc, the CNI plugins) and
# what the chart's images are built with; the images themselves, built from the Dockerfile
# into a cache keyed by their inputs; external-provisioner for the lab CSI driver on those
# nodes (hack/site-csi.sh).
bash hack/install-deps.sh
bash hack/install-node-runtime.sh
bash hack/build-images.sh >/dev/null
bash hack/install-csi-provisioner.sh >/dev/null
# Test-only: promtool (the alert rules), csi-sanity, the power-cut filesystem the crash
# tests run the sidecars on, a real kernel with device-mapper and NBD for the splice tests
# (Debian's, in qemu), the node splice's NBD netlink helper, and the small test images.
bash hack/install-kube.sh --promtool
bash hack/install-csi.sh --csi-sanity >/dev/null
bash hack/build-crashfs.sh >/dev/null
bash hack/vm.sh build
bash hack/build-nbd-helper.sh >/dev/null
bash hack/build-test-images.sh >/dev/null
# Node 24 LTS: the second pass below, and the database failover test's writer (node:sqlite).
lts=$(bash hack/node-lts.sh)
npm test

echo "== again on Node $("$lts" --version): unit tests (sidecar and operator), CLI, crash safety, slab reads"
# Acceptance tests spawn the sidecar with the running Node (process.execPath).
"$lts" --experimental-vm-modules node_modules/jest/bin/jest.js --selectProjects unit acceptance \
  --testPathPatterns 'sidecar/|operator/|proto/|test/cli|test/crash-safety'
