#!/bin/bash
# Side-by-side registry benchmark: CNCF distribution (Debian docker-registry) and Seawall on the
# same corpus, in one run, alternating, REPEAT times. Appends JSON lines to results/registry-PRESET.jsonl.
#   bench/compare_registry.sh PRESET [REPEAT]
# Seawall runs with auth on and bearer tokens only (the Docker token flow, as real clients use it);
# distribution with its default (no auth). Both listen on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")"
preset=${1:?PRESET (small|medium|many-tags)} n=${2:-3} corpus=corpus/$1 out=results/registry-$1.jsonl
PY=${PY:-../.venv/bin/python}
SEAWALL=${SEAWALL:-../.venv/bin/seawall}
DIST_PORT=5101 SW_PORT=5111
mkdir -p results run
[ -f "$corpus/corpus.json" ] || $PY make_corpus.py "$preset" "$corpus"

stop_seawall() {  # the launcher and its workers
  pkill -f "seawall serve --host 127.0.0.1 --port $SW_PORT" 2>/dev/null || true
  for _ in $(seq 50); do pgrep -f "seawall serve --host 127.0.0.1 --port $SW_PORT" >/dev/null || return 0; sleep 0.1; done
}
trap './registry.sh stop A; stop_seawall' EXIT

start_seawall() {  # fresh data dir; prints the worker's PID (the process that serves)
  stop_seawall
  rm -rf run/seawall; mkdir -p run/seawall
  SEAWALL_ADMIN_PASSWORD=benchpw SEAWALL_LOG_LEVEL=warning SEAWALL_AUTH__BASIC_ON_REGISTRY=false \
    "$SEAWALL" serve --host 127.0.0.1 --port $SW_PORT --data-dir run/seawall/data >run/seawall/log 2>&1 &
  local sw_pid=$!
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SW_PORT/v2/" || true)
    [[ $code == 401 ]] && break; sleep 0.1
  done
  for _ in $(seq 50); do
    pgrep -P "$sw_pid" && return 0
    sleep 0.1
  done
  echo "seawall did not start" >&2; cat run/seawall/log >&2; return 1
}

rss_watch() {  # peak RSS (KiB) of a PID, sampled every 0.1 s until the file $2 disappears
  local pid=$1 flag=$2 peak=0 cur
  while [ -f "$flag" ]; do
    cur=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status 2>/dev/null || echo 0)
    [ "${cur:-0}" -gt "$peak" ] && peak=$cur
    sleep 0.1
  done
  echo "$peak"
}

measure() {  # measure LABEL URL PID [bench args...]
  local label=$1 url=$2 pid=$3; shift 3
  local flag; flag=$(mktemp); local peakfile; peakfile=$(mktemp)
  (rss_watch "$pid" "$flag" >"$peakfile") &
  local watcher=$!
  local line
  line=$($PY bench_registry.py "$url" --corpus "$corpus" --server-pid "$pid" --label "$label" "$@")
  rm -f "$flag"; wait "$watcher"
  echo "$line" | $PY -c "import json,sys; d=json.loads(sys.stdin.read()); d['server_peak_rss_mib']=round(int(open('$peakfile').read().strip() or 0)/1024,1); d['server']='$label'; print(json.dumps(d))" | tee -a "$out"
  rm -f "$peakfile"
}

for i in $(seq "$n"); do
  pid=$(./registry.sh start A $DIST_PORT)
  measure "distribution" "http://127.0.0.1:$DIST_PORT" "$pid"
  ./registry.sh stop A
  pid=$(start_seawall)
  measure "seawall" "http://127.0.0.1:$SW_PORT" "$pid" --user admin --password benchpw
  stop_seawall
done

# One large blob: peak server RSS while receiving and serving it (2 GiB by default).
big=${BIG_MIB:-2048}
if [ "$big" -gt 0 ]; then
  pid=$(./registry.sh start A $DIST_PORT)
  $PY big_blob.py "http://127.0.0.1:$DIST_PORT" --server-pid "$pid" --size-mib "$big" --label distribution | tee -a results/big-blob.jsonl
  ./registry.sh stop A
  pid=$(start_seawall)
  $PY big_blob.py "http://127.0.0.1:$SW_PORT" --server-pid "$pid" --size-mib "$big" --label seawall --user admin --password benchpw | tee -a results/big-blob.jsonl
  stop_seawall
fi
