#!/usr/bin/env bash
# The two-site lab on real Kubernetes nodes, no external cluster needed (run as root).
# Two sites start in parallel (hack/site.sh: etcd, kube-apiserver, controller-manager,
# scheduler, kube-proxy and a node with a kubelet and containerd, each site in its own
# network namespace); the blockmirror chart is installed on both with `helm` from the
# images built here from the Dockerfile (hack/site-chart.sh), so its operator and sidecar
# run as pods; the lab CSI driver is deployed on both (hack/site-csi.sh) and a claim of its
# StorageClass binds. Then what a user does: a database volume (an ext4 filesystem with
# files, on a loop device of site A's node) as a `local` PV, a secondary on site B, and
# `kubectl apply` of examples/two-site; the pair reaches InSync, new data written through
# site A's NBD export arrives on B byte-identical, and `kubectl get rp` shows both sites.
#
# Usage: hack/lab.sh          LAB_KEEP=1 keeps the lab running until Ctrl-C;
#                             LAB_CSI=0 leaves out the lab CSI driver (and its build).
# Each phase prints its time and a summary closes the run. Everything lives in a temp dir;
# on exit, failure or Ctrl-C both sites are taken down (site-csi.sh and site.sh down: every
# process, mount, loop device, network namespace and veth) and the dir is removed.
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "${BASH_SOURCE[0]}")/.."
KUBE_VERSION=${KUBE_VERSION:-v1.36.3}
KUBE_BIN=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/kube-$KUBE_VERSION/bin
NS=blockmirror-system
PAIR=db-data
SIZE_MIB=64
LAB_CSI=${LAB_CSI:-1}
SITES=(a b)

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'lab: %s\n' "$*" >&2; exit 1; }

now() { printf '%s' "${EPOCHREALTIME/./}"; } # microseconds
secs() { printf '%d.%d' $(($1 / 1000000)) $(($1 % 1000000 / 100000)); }
PHASES=()
# phase NAME START: records and prints how long NAME took since START (from `now`).
phase() {
  local us=$(($(now) - $2))
  PHASES+=("$(printf '%-58s %6s s' "$1" "$(secs "$us")")")
  printf 'lab: %s took %s s\n' "$1" "$(secs "$us")"
}

((EUID == 0)) || die "run as root: the sites need network namespaces, mounts and loop devices"
[[ $LAB_CSI == 0 || $LAB_CSI == 1 ]] || die "LAB_CSI must be 0 or 1"

WORK=$(mktemp -d -t blockmirror-lab.XXXXXX)
BG=()    # background jobs (site.sh up, site-chart.sh install, site-csi.sh up)
LOOPS=() # loop devices of the lab's volumes
cleanup() {
  local rc=$? pid site loop t
  set +e
  trap - EXIT INT TERM
  # Background jobs started without job control ignore SIGINT: stop them (their own traps
  # undo what they started) and wait, so that nothing races the teardown below.
  for pid in ${BG[@]+"${BG[@]}"}; do kill -TERM "$pid" 2>/dev/null; done
  for pid in ${BG[@]+"${BG[@]}"}; do wait "$pid" 2>/dev/null; done
  # A failure shows what the sites were doing; Ctrl-C (130) or TERM (143) is a user's stop.
  ((rc == 0 || rc == 130 || rc == 143)) || diagnose
  log "stopping the lab"
  t=$(now)
  for site in "${SITES[@]}"; do bash hack/site-csi.sh down "$WORK/site-$site" & done
  wait
  for site in "${SITES[@]}"; do bash hack/site.sh down "$WORK/site-$site" & done
  wait
  for loop in ${LOOPS[@]+"${LOOPS[@]}"}; do losetup --detach "$loop" 2>/dev/null; done
  rm -rf "$WORK"
  printf 'lab: both sites down, loop devices detached, %s removed (%s s)\n' "$WORK" "$(secs $(($(now) - t)))"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# parallel NAME FUNCTION: runs `FUNCTION SITE` for each site in the background, and
# waits for all; fails when any failed (every one is waited for first: none is left running).
# Each FUNCTION execs its script, so that the job's pid is the script's own (cleanup signals it).
parallel() {
  local what=$1 pid rc=0 site
  shift
  BG=()
  for site in "${SITES[@]}"; do
    "$1" "$site" &
    BG+=($!)
  done
  for pid in "${BG[@]}"; do wait "$pid" || rc=$?; done
  BG=()
  ((rc == 0)) || die "$what failed"
}

k() { local site=$1; shift; "$KUBE_BIN/kubectl" --kubeconfig "$WORK/site-$site/kubeconfig" "$@"; }

# field FILE EXPR: a value from a JSON file (EXPR is JavaScript over `j`).
field() {
  node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(eval(process.argv[2]))' "$1" "$2"
}

# render FILE VAR=VALUE...: the example with its ${VAR} placeholders filled in.
# shellcheck disable=SC2016 # Perl, not shell
render() {
  local file=$1
  shift
  env "$@" perl -pe 'next if /^\s*#/; s/\$\{([A-Z_]+)\}/exists $ENV{$1} ? $ENV{$1} : die "no value for \${$1}\n"/ge' "$file"
}

# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds, or fail at the deadline.
wait_for() {
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out waiting for $what"
    sleep 0.2
  done
}

state_is() { [[ $(k "$1" get rp "$PAIR" -o 'jsonpath={.status.state}') == "$2" ]]; }
same_bytes() { cmp -s "$1" "$2"; }
claim_bound() { [[ $(k "$1" get pvc lab-data -o 'jsonpath={.status.phase}') == Bound ]]; }

# diagnose: after a failure, what each site's pods and components were doing.
diagnose() {
  local site f
  for site in "${SITES[@]}"; do
    [[ -f $WORK/site-$site/site.json ]] || continue
    printf '\n--- site %s: pods\n' "$site" >&2
    k "$site" get pods -A -o wide >&2 2>&1
    k "$site" -n "$NS" logs -l app.kubernetes.io/instance=blockmirror --all-containers --prefix --tail=20 >&2 2>&1
    for f in "$WORK/site-$site"/*.log "$WORK/site-$site"/lab-csi/*.log; do
      [[ -s $f ]] && { printf '\n--- site %s: last lines of %s\n' "$site" "${f##*/}" >&2; tail -n 10 "$f" >&2; }
    done
  done
  return 0
}

T0=$(now)
log "installing what the lab needs (first run: apt packages, npm ci, the kube binaries and helm, the images, external-provisioner: ~40 min), building"
t=$(now)
bash hack/install-deps.sh
bash hack/install-node-runtime.sh
((LAB_CSI == 0)) || bash hack/install-csi-provisioner.sh >/dev/null
npm run --silent build
bash hack/build-images.sh >"$WORK/images.json"
phase "install and build (warm: checks, tsc, image input hash)" "$t"

log "site A's volume: an ext4 filesystem with a database's files, on a loop device of its node; site B's: empty"
t=$(now)
mkdir -p "$WORK/volumes/db"
for i in 1 2 3; do head -c 4M /dev/urandom >"$WORK/volumes/db/table$i.dat"; done
truncate -s "${SIZE_MIB}M" "$WORK/volumes/site-a.img" "$WORK/volumes/site-b.img"
mkfs.ext4 -q -F -d "$WORK/volumes/db" "$WORK/volumes/site-a.img"
declare -A DEVICE
for site in "${SITES[@]}"; do
  DEVICE[$site]=$(losetup --find --show "$WORK/volumes/site-$site.img")
  LOOPS+=("${DEVICE[$site]}")
  echo "site $site: ${DEVICE[$site]} ($WORK/volumes/site-$site.img)"
done
phase "volumes" "$t"

log "starting both sites in parallel: control plane, kubelet, containerd (the chart's images imported)"
t=$(now)
up_site() {
  exec bash hack/site.sh up "$WORK/site-$1" --name "site-$1" \
    --sandbox-image "$(field "$WORK/images.json" j.pause.image)" --sandbox-archive "$(field "$WORK/images.json" j.pause.archive)" \
    --import "$(field "$WORK/images.json" j.operator.archive)" --import "$(field "$WORK/images.json" j.sidecar.archive)" >/dev/null
}
parallel "site.sh up" up_site
phase "both sites up, nodes Ready" "$t"
for site in "${SITES[@]}"; do
  printf 'site %s: node %s at %s, API server %s\n' "$site" "$(field "$WORK/site-$site/site.json" 'j.nodes[0].name')" \
    "$(field "$WORK/site-$site/site.json" 'j.nodes[0].address')" "$(field "$WORK/site-$site/site.json" j.apiServer)"
done

log "helm install blockmirror on both sites (the operator and sidecar pods from the local images)"
t=$(now)
install_chart() {
  exec bash hack/site-chart.sh install "$WORK/site-$1" --ca "$WORK/peer-ca" --images "$WORK/images.json" >"$WORK/chart-$1.json"
}
parallel "site-chart.sh install" install_chart
phase "chart installed, every pod Ready" "$t"
for site in "${SITES[@]}"; do k "$site" -n "$NS" get pods -o wide; done

if ((LAB_CSI == 1)); then
  log "the lab CSI driver on both sites (registered with the kubelet; external-provisioner); a claim of its StorageClass"
  t=$(now)
  csi_up() { exec bash hack/site-csi.sh up "$WORK/site-$1" >/dev/null; }
  parallel "site-csi.sh up" csi_up
  for site in "${SITES[@]}"; do k "$site" apply -f examples/lab-csi/claim.yaml >/dev/null; done
  for site in "${SITES[@]}"; do wait_for "the lab-data claim Bound on site $site" 60 claim_bound "$site"; done
  phase "lab CSI driver up, claims bound" "$t"
  for site in "${SITES[@]}"; do k "$site" get pvc lab-data; done
fi

log "kubectl apply -f examples/two-site/site-b.yaml (secondary) and site-a.yaml (primary)"
t=$(now)
NODE_A=$(field "$WORK/site-a/site.json" 'j.nodes[0].name')
NODE_B=$(field "$WORK/site-b/site.json" 'j.nodes[0].name')
PEER_B=$(field "$WORK/chart-b.json" 'j.peerEndpoints[0]')
render examples/two-site/site-b.yaml VOLUME_SIZE="${SIZE_MIB}Mi" VOLUME_PATH="${DEVICE[b]}" NODE="$NODE_B" | k b apply -f -
render examples/two-site/site-a.yaml VOLUME_SIZE="${SIZE_MIB}Mi" VOLUME_PATH="${DEVICE[a]}" NODE="$NODE_A" REMOTE_ENDPOINT="$PEER_B" | k a apply -f -

log "waiting for the initial copy: the primary on site A InSync"
wait_for "site A InSync" 120 state_is a InSync
wait_for "site B InSync" 60 state_is b InSync
phase "pairs applied, initial copy done (InSync)" "$t"
k a get rp

log "writing new data through site A's NBD export (qemu-io, on site A's node)"
t=$(now)
EXPORT=$(k a get rp "$PAIR" -o 'jsonpath={.status.exportAddress}')
nsenter --net="/run/netns/$(field "$WORK/site-a/site.json" j.netns)" -- \
  qemu-io -f raw -c "write -P 0x5a 48M 8M" -c flush "nbd://$EXPORT/default.$PAIR" | sed 's/^/    /'
wait_for "site A InSync after the write" 60 state_is a InSync
wait_for "site B's volume byte-identical to site A's" 30 same_bytes "${DEVICE[a]}" "${DEVICE[b]}"
phase "write through the export replicated" "$t"

log "site B holds the same bytes"
echo "site A ${DEVICE[a]} $(sha256sum <"${DEVICE[a]}" | cut -d' ' -f1)"
echo "site B ${DEVICE[b]} $(sha256sum <"${DEVICE[b]}" | cut -d' ' -f1)"
if e2fsck -fn "${DEVICE[b]}" >/dev/null 2>&1; then
  echo "site B's copy: ext4 clean (e2fsck -fn)"
else
  die "site B's copy is not a clean ext4 filesystem (e2fsck -fn ${DEVICE[b]})"
fi

log "kubectl get rp (site A)"
k a get rp
log "kubectl get rp (site B)"
k b get rp
log "kubectl describe rp $PAIR (site A)"
k a describe rp "$PAIR" | sed -n '/^Status:/,$p'

phase "lab (total)" "$T0"
log "timings"
printf '  %s\n' "${PHASES[@]}"

if [[ ${LAB_KEEP:-0} == 1 ]]; then
  log "lab running (Ctrl-C to stop)"
  for site in "${SITES[@]}"; do
    printf '  site %s: %s --kubeconfig %s get rp\n' "$site" "$KUBE_BIN/kubectl" "$WORK/site-$site/kubeconfig"
    printf '          node shell: nsenter --net=/run/netns/%s bash\n' "$(field "$WORK/site-$site/site.json" j.netns)"
  done
  while :; do sleep 3600; done
fi
