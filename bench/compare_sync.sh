#!/bin/bash
# Side-by-side sync benchmark: skopeo sync (JOBS=1 and JOBS=4) and `seawall sync`, each on a
# fresh pair of CNCF distribution registries (A :5101 -> B :5102) filled with the same corpus, in
# one run, REPEAT times (the order alternates). Appends bench_sync.sh's JSON lines, stamped with
# the commit and the date, to results/sync-PRESET.jsonl.
#   bench/compare_sync.sh PRESET [REPEAT]
set -euo pipefail
cd "$(dirname "$0")"
preset=${1:?PRESET} n=${2:-1} corpus=corpus/$1 out=results/sync-$1.jsonl
PY=${PY:-../.venv/bin/python}
SEAWALL=${SEAWALL:-$(cd .. && pwd)/.venv/bin/seawall}
A=http://127.0.0.1:5101 B=http://127.0.0.1:5102
mkdir -p results run
[ -f "$corpus/corpus.json" ] || $PY make_corpus.py "$preset" "$corpus"
trap './registry.sh stop A; ./registry.sh stop B' EXIT

fresh() {  # empty A and B, the corpus pushed to A
  ./registry.sh start B 5102 >/dev/null
  ./registry.sh start A 5101 >/dev/null
  $PY bench_registry.py $A --corpus "$corpus" --phases push >/dev/null
}

commit=$(git -C .. rev-parse --short HEAD 2>/dev/null || echo unknown)
stamp() { sed "s/^{/{\"commit\": \"$commit\", \"date\": \"$(date -u +%FT%TZ)\", /"; }

skopeo_runs() {
  for jobs in 1 4; do
    fresh
    PY=$PY CORPUS=$corpus JOBS=$jobs ./bench_sync.sh $A $B | stamp | tee -a "$out"
  done
}

seawall_run() {
  fresh
  local state; state=$(mktemp -d)
  SYNC_CMD="$SEAWALL sync \$SRC_URL/\$PREFIX \$DST_URL/\$DEST_NS --quiet --state-dir $state" \
    TOOL=seawall PY=$PY CORPUS=$corpus ./bench_sync.sh $A $B | stamp | tee -a "$out"
  rm -rf "$state"
}

for i in $(seq "$n"); do  # alternate which tool goes first: load drifts on a shared machine
  if [ $((i % 2)) = 1 ]; then skopeo_runs; seawall_run; else seawall_run; skopeo_runs; fi
done
