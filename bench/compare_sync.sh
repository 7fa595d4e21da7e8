#!/bin/bash
# Side-by-side sync benchmark: skopeo sync (JOBS=1 and JOBS=4) and `seawall sync`, each on a
# fresh pair of CNCF distribution registries (A :5101 -> B :5102) filled with the same corpus, in
# one run, REPEAT times. Appends bench_sync.sh's JSON lines to results/sync-PRESET.jsonl.
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

for i in $(seq "$n"); do
  for jobs in 1 4; do
    fresh
    PY=$PY CORPUS=$corpus JOBS=$jobs ./bench_sync.sh $A $B | tee -a "$out"
  done
  fresh
  state=$(mktemp -d)
  SYNC_CMD="$SEAWALL sync \$SRC_URL/\$PREFIX \$DST_URL/\$DEST_NS --quiet --state-dir $state" \
    TOOL=seawall PY=$PY CORPUS=$corpus ./bench_sync.sh $A $B | tee -a "$out"
  rm -rf "$state"
done
