#!/usr/bin/env bash
# The two-site lab on real Kubernetes nodes, no external cluster needed (run as root): what
# a user does, with a database writing all along. Two sites start in parallel (hack/site.sh:
# etcd, kube-apiserver, controller-manager, scheduler, kube-proxy and a host node with a
# kubelet and containerd, each site in its own network namespace). Site A gains a node in the
# VM test bed (hack/site-vm-node.sh: the host's kernel has no device-mapper or NBD) running
# the lab CSI driver; `helm install` of the chart on both sites (hack/site-chart.sh), on A
# with the CSI node proxy wrapping the lab driver. Then examples/database: a StorageClass
# that opts in, a claim and a pod running SQLite (every commit fsync'd) on A, a secondary
# on a `local` volume of B, and the primary ReplicationPair. The operator puts the pod's
# writes through the tap; the pair reaches InSync; `kubectl get/describe` show it; and at
# the end every transaction committed on A is found on B, whose copy opens cleanly.
#
# Usage: hack/lab.sh          LAB_KEEP=1 keeps the lab running until Ctrl-C (also after a failure);
#                             LAB_BENCH=1 ends with bench/database-tps.sh's measurement.
# Each phase prints its time and a summary closes the run. Everything lives in a temp dir;
# on exit, failure or Ctrl-C both sites are taken down (site.sh down: the VM node, every
# process, mount, loop device, network namespace and veth) and the dir is removed.
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "${BASH_SOURCE[0]}")/.."
KUBE_VERSION=${KUBE_VERSION:-v1.36.3}
KUBE_BIN=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/kube-$KUBE_VERSION/bin
NS=blockmirror-system
PAIR=db-data
SIZE_MIB=64
SITES=(a b)
DRIVER=lab.csi.blockmirror.io

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
  # LAB_KEEP=1: a failed lab stays up too, for a look at what went wrong.
  if ((rc != 0 && rc != 130 && rc != 143)) && [[ ${LAB_KEEP:-0} == 1 ]]; then
    log "the lab failed; it stays up for inspection (LAB_KEEP=1): Ctrl-C to stop"
    printf '  work dir: %s\n' "$WORK"
    trap 'true' INT TERM
    sleep infinity &
    wait $! 2>/dev/null
  fi
  log "stopping the lab"
  t=$(now)
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
in_sync_clean() { [[ $(k a get rp "$PAIR" -o 'jsonpath={.status.state}/{.status.outOfSyncBytes}') == InSync/0 ]]; }
pod_running() { [[ $(k a get pod db -o 'jsonpath={.status.phase}') == Running ]]; }
# The last sequence number the database printed as committed (or held at).
committed() { k a logs db --tail=50 | sed -n 's/.*committed \([0-9]*\).*/\1/p' | tail -n 1; }
has_committed() { [[ -n $(committed) ]]; }
held() { k a logs db --tail=20 | sed -n 's/^holding: last committed \([0-9]*\)$/\1/p' | tail -n 1 | grep .; }

# diagnose: after a failure, what each site's pods and components were doing.
diagnose() {
  local site f
  for site in "${SITES[@]}"; do
    [[ -f $WORK/site-$site/site.json ]] || continue
    printf '\n--- site %s: pods\n' "$site" >&2
    k "$site" get pods -A -o wide >&2 2>&1
    k "$site" -n "$NS" logs -l app.kubernetes.io/instance=blockmirror --all-containers --prefix --tail=20 >&2 2>&1
    for f in "$WORK/site-$site"/*.log "$WORK/site-$site"/vm-node*/out/*.log; do
      [[ -s $f ]] && { printf '\n--- site %s: last lines of %s\n' "$site" "${f##*/}" >&2; tail -n 10 "$f" >&2; }
    done
  done
  return 0
}

T0=$(now)
log "installing what the lab needs (first run: apt packages, npm ci, the kube binaries and helm, external-provisioner, the VM's kernel, the images: ~45 min), building"
t=$(now)
bash hack/install-deps.sh
bash hack/install-node-runtime.sh
bash hack/install-csi-provisioner.sh >/dev/null
bash hack/vm.sh build >/dev/null
npm run --silent build
bash hack/build-images.sh >"$WORK/images.json"
phase "install and build (warm: checks, tsc, image input hash)" "$t"
IMAGE=$(field "$WORK/images.json" j.sidecar.image)

log "site B's volume for the secondary: a loop device of its node"
t=$(now)
mkdir -p "$WORK/volumes"
truncate -s "${SIZE_MIB}M" "$WORK/volumes/site-b.img"
DEVICE_B=$(losetup --find --show "$WORK/volumes/site-b.img")
LOOPS+=("$DEVICE_B")
echo "site b: $DEVICE_B ($WORK/volumes/site-b.img)"
phase "volume" "$t"

log "starting both sites in parallel: control plane, kubelet, containerd (the chart's images imported)"
t=$(now)
up_site() {
  exec bash hack/site.sh up "$WORK/site-$1" --name "site-$1" \
    --sandbox-image "$(field "$WORK/images.json" j.pause.image)" --sandbox-archive "$(field "$WORK/images.json" j.pause.archive)" \
    --import "$(field "$WORK/images.json" j.operator.archive)" --import "$(field "$WORK/images.json" j.sidecar.archive)" >/dev/null
}
parallel "site.sh up" up_site
phase "both sites up, host nodes Ready" "$t"
NODE_B=$(field "$WORK/site-b/site.json" 'j.nodes[0].name')
ADDR_B=$(field "$WORK/site-b/site.json" 'j.nodes[0].address')
for site in "${SITES[@]}"; do
  printf 'site %s: node %s at %s, API server %s\n' "$site" "$(field "$WORK/site-$site/site.json" 'j.nodes[0].name')" \
    "$(field "$WORK/site-$site/site.json" 'j.nodes[0].address')" "$(field "$WORK/site-$site/site.json" j.apiServer)"
done

log "site A's VM node (device-mapper and NBD; the lab CSI driver) and helm install on site B, in parallel"
t=$(now)
# The guest reaches B's peer port at 10.127.<A>.250:7401, and A's operator (a pod on the host
# node) the guest sidecar's control port at the VM node's address.
vm_node() {
  exec bash hack/site-vm-node.sh up "$WORK/site-a" --lab-csi --forward "7401=$ADDR_B:7401" --expose 7400 \
    --import "$(field "$WORK/images.json" j.operator.archive)" --import "$(field "$WORK/images.json" j.sidecar.archive)"
}
chart_b() { exec bash hack/site-chart.sh install "$WORK/site-b" --ca "$WORK/peer-ca" --images "$WORK/images.json" >"$WORK/chart-b.json"; }
vm_node 2>"$WORK/vm-node.log" &
BG=($!)
chart_b &
BG+=($!)
rc=0
for pid in "${BG[@]}"; do wait "$pid" || rc=$?; done
BG=()
((rc == 0)) || { tail -n 30 "$WORK/vm-node.log" >&2; die "the VM node or site B's chart failed"; }
grep -E '\] (booted|containerd ready|images imported|lab CSI)|up: node' "$WORK/vm-node.log" | sed 's/^/    /'
NODE_VM=$(field "$WORK/site-a/site.json" 'j.nodes.find((n) => n.vm).name')
ADDR_VM=$(field "$WORK/site-a/site.json" 'j.nodes.find((n) => n.vm).address')
phase "VM node Ready with the lab CSI driver; site B's chart Ready" "$t"

log "helm install on site A: the sidecar and the CSI node proxy (wrapping $DRIVER) on the VM node, the operator on the host node"
t=$(now)
bash hack/site-chart.sh install "$WORK/site-a" --ca "$WORK/peer-ca" --images "$WORK/images.json" -- \
  --set-json 'sidecar.nodeSelector={"blockmirror.io/node-kernel":"vm"}' \
  --set sidecar.kubeletDir=/var/lib/kubelet --set sidecar.stateDir=/var/lib/blockmirror \
  --set-json "operator.nodeSelector={\"kubernetes.io/hostname\":\"$(field "$WORK/site-a/site.json" 'j.nodes[0].name')\"}" \
  --set-json "csiProxy.drivers=[{\"name\":\"$DRIVER\",\"endpoint\":\"/var/lib/kubelet/plugins/$DRIVER/csi.sock\"}]" >"$WORK/chart-a.json"
phase "site A's chart Ready" "$t"
for site in "${SITES[@]}"; do k "$site" -n "$NS" get pods -o wide; done

log "the database on site A: examples/database (an opted-in StorageClass, a claim, a pod committing with fsync)"
t=$(now)
k a create configmap db-writer --from-file=sqlite-writer.mjs=examples/database/sqlite-writer.mjs >/dev/null
k a apply -f examples/database/storage-class.yaml
# The claim and the pod; the pair once the secondary exists.
render examples/database/site-a.yaml VOLUME_SIZE="${SIZE_MIB}Mi" NODE="$NODE_VM" IMAGE="$IMAGE" REMOTE_ENDPOINT="${ADDR_VM%.*}.250:7401" |
  awk 'BEGIN { RS = "---\n" } !/kind: ReplicationPair/ { printf "---\n%s", $0 }' | k a apply -f -
wait_for "the database pod Running" 600 pod_running
wait_for "the database's first commit" 120 has_committed
PV_A=$(k a get pvc db -o 'jsonpath={.spec.volumeName}')
printf 'pod db on %s, volume %s mounted from %s\n' "$NODE_VM" "$PV_A" \
  "$(k a exec db -- cat /proc/self/mountinfo | awk '$5 == "/data" { split($0, p, " - "); split(p[2], f, " "); print f[2] }')"
phase "database pod running, committing" "$t"

log "kubectl apply of examples/database/site-b.yaml (secondary) and site-a.yaml (the primary pair)"
t=$(now)
render examples/database/site-b.yaml VOLUME_SIZE="${SIZE_MIB}Mi" VOLUME_PATH="$DEVICE_B" NODE="$NODE_B" | k b apply -f -
render examples/database/site-a.yaml VOLUME_SIZE="${SIZE_MIB}Mi" NODE="$NODE_VM" IMAGE="$IMAGE" REMOTE_ENDPOINT="${ADDR_VM%.*}.250:7401" | k a apply -f -
log "waiting for the operator to attach the tap and the initial copy: the primary on site A InSync"
wait_for "site A InSync" 900 state_is a InSync
phase "pairs applied, tap attached, initial copy done (InSync)" "$t"

log "kubectl get rp (site A)"
k a get rp -o wide
log "kubectl get rp (site B)"
k b get rp -o wide
log "kubectl describe rp $PAIR (site A)"
k a describe rp "$PAIR" | sed -n '/^Status:/,$p'

log "every committed transaction on site B: the writes held, the pair in sync, then paused for a copy of B's volume"
t=$(now)
k a exec db -- node -e "process.kill(1, 'SIGUSR1')"
wait_for "the database holding its writes" 60 held
N=$(held)
wait_for "site A InSync with nothing out of sync" 300 in_sync_clean
k a patch rp "$PAIR" --type=merge -p '{"spec":{"paused":true}}' >/dev/null
wait_for "site A Paused" 120 state_is a Paused
cp --sparse=always "$DEVICE_B" "$WORK/volumes/b-copy.img"
fsck=0
e2fsck -fy "$WORK/volumes/b-copy.img" >/dev/null 2>&1 || fsck=$?
((fsck <= 1)) || die "site B's copy is not a sound ext4 filesystem (e2fsck exited $fsck)"
mkdir -p "$WORK/volumes/b-db"
for f in db.sqlite db.sqlite-wal; do debugfs -R "dump /$f $WORK/volumes/b-db/$f" "$WORK/volumes/b-copy.img" >/dev/null 2>&1; done
read -r INTEGRITY ROWS MAXSEQ < <(python3 -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); r = c.execute('select count(*), coalesce(max(seq), 0) from tx').fetchone(); print(c.execute('pragma integrity_check').fetchone()[0], r[0], r[1])" "$WORK/volumes/b-db/db.sqlite")
printf 'site A: %s transactions committed (the last one printed by the database)\n' "$N"
printf 'site B: %s transactions found, the last one %s; SQLite integrity_check: %s; ext4 journal replayed cleanly (e2fsck %s)\n' "$ROWS" "$MAXSEQ" "$INTEGRITY" "$fsck"
[[ $INTEGRITY == ok && $ROWS == "$N" && $MAXSEQ == "$N" ]] || die "site B does not hold exactly the $N committed transactions"
k a patch rp "$PAIR" --type=merge -p '{"spec":{"paused":false}}' >/dev/null
k a exec db -- node -e "process.kill(1, 'SIGUSR1')"
phase "site B verified: every committed transaction, clean" "$t"

if [[ ${LAB_BENCH:-0} == 1 ]]; then
  log "benchmark: the database's commits per second (unthrottled) with the pair in sync mode, paused, in async mode, and on an unspliced volume"
  t=$(now)
  BENCH_SECONDS=${BENCH_SECONDS:-30}
  # tps POD: commits per second over BENCH_SECONDS of the writer's own lines (`committed N at T`).
  tps() {
    sleep 5 # past the switch
    local n1 t1 n2 t2
    read -r n1 t1 < <(k a logs "$1" --tail=1 | sed -n 's/^committed \([0-9]*\) at \(.*\)$/\1 \2/p')
    sleep "$BENCH_SECONDS"
    read -r n2 t2 < <(k a logs "$1" --tail=1 | sed -n 's/^committed \([0-9]*\) at \(.*\)$/\1 \2/p')
    node -e 'const [a, ta, b, tb] = process.argv.slice(1); console.log(((b - a) / ((Date.parse(tb) - Date.parse(ta)) / 1000)).toFixed(1))' "$n1" "$t1" "$n2" "$t2"
  }
  k a exec db -- node -e "process.kill(1, 'SIGUSR2')"
  SYNC=$(tps db)
  k a patch rp "$PAIR" --type=merge -p '{"spec":{"paused":true}}' >/dev/null
  wait_for "site A Paused" 120 state_is a Paused
  PAUSED=$(tps db)
  # A mode change recreates the sidecar pair (a full copy) and attaches it again.
  k a patch rp "$PAIR" --type=merge -p '{"spec":{"paused":false,"mode":"async"}}' >/dev/null
  k b patch rp "$PAIR" --type=merge -p '{"spec":{"mode":"async"}}' >/dev/null
  wait_for "site A Replicating in async mode" 900 state_is a Replicating
  ASYNC=$(tps db)
  k a exec db -- node -e "process.kill(1, 'SIGUSR1')" # held: the unspliced pod runs alone
  render examples/database/site-a.yaml VOLUME_SIZE="${SIZE_MIB}Mi" NODE="$NODE_VM" IMAGE="$IMAGE" REMOTE_ENDPOINT=unused |
    awk 'BEGIN { RS = "---\n" } !/kind: ReplicationPair/ { printf "---\n%s", $0 }' |
    sed -e 's/name: db$/name: db-plain/' -e 's/claimName: db }/claimName: db-plain }/' -e 's/storageClassName: lab-csi-replicated/storageClassName: lab-csi/' -e 's/"10"\]/"0"]/' |
    k a apply -f -
  plain_running() { [[ $(k a get pod db-plain -o 'jsonpath={.status.phase}') == Running ]]; }
  wait_for "the unspliced pod Running" 600 plain_running
  PLAIN=$(tps db-plain)
  printf '\n  %-44s %10s %8s\n' "database on the VM node (TCG), unthrottled" "commits/s" "ratio"
  for row in "unspliced volume (lab-csi):$PLAIN" "spliced, pair paused (detached):$PAUSED" "spliced, sync mode (attached):$SYNC" "spliced, async mode (attached):$ASYNC"; do
    printf '  %-44s %10s %8s\n' "${row%%:*}" "${row##*:}" "$(node -e 'console.log((process.argv[1] / process.argv[2]).toFixed(3))' "${row##*:}" "$PLAIN")"
  done
  phase "benchmark" "$t"
fi

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
