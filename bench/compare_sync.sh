#!/bin/bash
# Side-by-side sync benchmark: skopeo sync (JOBS=1 and JOBS=4) and `seawall sync`, each on a
# fresh pair of registries (A :5101 -> B :5102) filled with the same corpus, in one run, REPEAT
# times (the order alternates). Appends bench_sync.sh's JSON lines, stamped with the commit and the
# date, to results/sync-PRESET.jsonl.
#   bench/compare_sync.sh PRESET [REPEAT]
#   REGISTRY=distribution (default): CNCF distribution registries (registry.sh), no auth.
#   REGISTRY=seawall: Seawall registries (seawall_registry.sh), auth on (admin / $PW, bearer tokens
#     only, the Docker token flow); every client is given the credentials. Lines are stamped
#     "registry": "seawall" and go to results/sync-PRESET-seawall.jsonl. A third Seawall figure is
#     taken here: TOOL=seawall-server, a manual push policy on A run by A's own engine through the
#     management API (policy_setup.py makes the policy, untimed; run_policy.sh starts an execution
#     with curl and waits for its end), as a deployment replicates; no process start-up in it.
set -euo pipefail
cd "$(dirname "$0")"
preset=${1:?PRESET} n=${2:-1} corpus=corpus/$1
PY=${PY:-../.venv/bin/python}
SEAWALL=${SEAWALL:-$(cd .. && pwd)/.venv/bin/seawall}
A=http://127.0.0.1:5101 B=http://127.0.0.1:5102
REGISTRY=${REGISTRY:-distribution}
case $REGISTRY in
distribution)
  reg=./registry.sh out=results/sync-$1.jsonl tag=""
  push_auth=() sync_auth="" ;;
seawall)
  PW=benchpw; export SEAWALL SEAWALL_BENCH_PASSWORD=$PW
  reg=./seawall_registry.sh out=results/sync-$1-seawall.jsonl tag='"registry": "seawall", '
  push_auth=(--user admin --password "$PW")
  sync_auth="--src-creds admin:$PW --dest-creds admin:$PW"
  export SRC_CREDS=admin:$PW DEST_CREDS=admin:$PW ;;  # bench_sync.sh: skopeo, verify, increment push
*) echo "REGISTRY must be distribution or seawall" >&2; exit 2 ;;
esac
mkdir -p results run
[ -f "$corpus/corpus.json" ] || $PY make_corpus.py "$preset" "$corpus"
trap '$reg stop A; $reg stop B' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM  # so the EXIT trap runs (after the current step)

fresh() {  # empty A and B, the corpus pushed to A
  $reg start B 5102 >/dev/null
  $reg start A 5101 >/dev/null
  $PY bench_registry.py $A --corpus "$corpus" --phases push "${push_auth[@]}" >/dev/null
}

commit=$(git -C .. rev-parse --short HEAD 2>/dev/null || echo unknown)
stamp() { sed "s/^{/{\"commit\": \"$commit\", \"date\": \"$(date -u +%FT%TZ)\", $tag/"; }

skopeo_runs() {
  for jobs in 1 4; do
    fresh
    PY=$PY CORPUS=$corpus JOBS=$jobs ./bench_sync.sh $A $B | stamp | tee -a "$out"
  done
}

seawall_run() {
  fresh
  local state; state=$(mktemp -d)
  SYNC_CMD="$SEAWALL sync \$SRC_URL/\$PREFIX \$DST_URL/\$DEST_NS --quiet --state-dir $state $sync_auth" \
    TOOL=seawall PY=$PY CORPUS=$corpus ./bench_sync.sh $A $B | stamp | tee -a "$out"
  rm -rf "$state"
}

server_run() {  # Seawall registries only: A's engine replicates A -> B
  [ "$REGISTRY" = seawall ] || return 0
  fresh
  local policy; policy=$($PY policy_setup.py $A $B --password "$PW")  # not timed: configuration
  SYNC_CMD="./run_policy.sh $A admin:$PW $policy" \
    TOOL=seawall-server PY=$PY CORPUS=$corpus ./bench_sync.sh $A $B | stamp | tee -a "$out"
}

for i in $(seq "$n"); do  # alternate which tool goes first: load drifts on a shared machine
  if [ $((i % 2)) = 1 ]; then
    skopeo_runs; seawall_run; server_run
  else
    server_run; seawall_run; skopeo_runs
  fi
done
