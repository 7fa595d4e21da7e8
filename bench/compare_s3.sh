#!/bin/bash
# Object storage side by side: CNCF distribution's S3 driver (Debian docker-registry) and Seawall
# (SEAWALL_STORAGE__DRIVER=s3) on the same moto S3 endpoint, in one run, alternating, REPEAT
# times. Per repeat and registry: a fresh bucket, the corpus pushed and pulled with blob
# redirects off (bytes through the registry), then the registry restarted on the same bucket
# (and, for Seawall, the same data directory) with redirects on (307 to the store) and the
# corpus pulled again. Redirects change only blob GETs, so the push is measured once.
# Appends JSON lines to results/s3-PRESET.jsonl; then, unless BIG_MIB=0, one large blob
# (default 2048 MiB) through each registry with redirects off: peak server RSS.
#   bench/compare_s3.sh PRESET [REPEAT]          # e.g. small 3
# moto runs on 127.0.0.1:$MOTO_PORT (default 5190), distribution on :5101, Seawall on :5111.
# AWS_CA_BUNDLE is unset for everything (distribution's S3 driver crashes with it set); moto is
# reset after every measurement (it keeps objects in memory). Seawall: auth on, bearer tokens.
set -euo pipefail
cd "$(dirname "$0")"
preset=${1:?PRESET (small|medium)} n=${2:-3} corpus=corpus/$1 out=results/s3-$1.jsonl
PY=${PY:-../.venv/bin/python}
SEAWALL=${SEAWALL:-../.venv/bin/seawall}
MOTO=${MOTO:-../.venv/bin/moto_server}
MOTO_PORT=${MOTO_PORT:-5190} DIST_PORT=5101 SW_PORT=5111
MOTO_URL=http://127.0.0.1:$MOTO_PORT
mkdir -p results run/s3
[ -f "$corpus/corpus.json" ] || $PY make_corpus.py "$preset" "$corpus"
unset AWS_CA_BUNDLE AWS_PROFILE AWS_ENDPOINT_URL_S3
export AWS_ENDPOINT_URL=$MOTO_URL AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
commit=$(git -C .. rev-parse --short HEAD 2>/dev/null || echo unknown)

stop_group() {  # stop_group PIDFILE: TERM (then KILL) the process group its PID leads
  [ -f "$1" ] || return 0
  local pg; pg=$(cat "$1"); rm -f "$1"
  kill -TERM -- "-$pg" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 -- "-$pg" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$pg" 2>/dev/null || true
}
cleanup() { stop_group run/s3/dist.pid; stop_group run/s3/seawall.pid; stop_group run/s3/moto.pid; }
trap cleanup EXIT

wait_http() {  # wait_http URL: until it answers at all (any status)
  for _ in $(seq 300); do
    curl -s -o /dev/null "$1" && return 0; sleep 0.1
  done
  echo "$1 did not answer" >&2; return 1
}

start_moto() {
  setsid "$MOTO" -H 127.0.0.1 -p "$MOTO_PORT" >run/s3/moto.log 2>&1 </dev/null &
  echo $! >run/s3/moto.pid
  wait_http "$MOTO_URL/moto-api/"
}
reset_moto() { curl -sf -X POST "$MOTO_URL/moto-api/reset" >/dev/null; }

start_distribution() {  # start_distribution BUCKET REDIRECT(true|false); prints its PID
  local bucket=$1 disable=true
  [ "$2" = true ] && disable=false
  curl -s -o /dev/null -X PUT "$MOTO_URL/$bucket"  # again on a restart: exists already
  cat >run/s3/dist.yml <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  s3: {region: us-east-1, regionendpoint: "$MOTO_URL", bucket: $bucket, accesskey: testing, secretkey: testing, secure: false, v4auth: true}
  delete: {enabled: true}
  cache: {blobdescriptor: inmemory}
  redirect: {disable: $disable}
http: {addr: "127.0.0.1:$DIST_PORT"}
EOF
  setsid docker-registry serve run/s3/dist.yml >run/s3/dist.log 2>&1 </dev/null &
  echo $! >run/s3/dist.pid
  wait_http "http://127.0.0.1:$DIST_PORT/v2/"
  cat run/s3/dist.pid
}

start_seawall() {  # start_seawall BUCKET REDIRECT [keep]; prints the worker's PID (it serves)
  [ "${3:-}" = keep ] || rm -rf run/s3/seawall-data
  SEAWALL_ADMIN_PASSWORD=benchpw SEAWALL_LOG_LEVEL=warning SEAWALL_AUTH__BASIC_ON_REGISTRY=false \
    SEAWALL_STORAGE__DRIVER=s3 SEAWALL_STORAGE__BUCKET="$1" SEAWALL_STORAGE__REDIRECT="$2" \
    setsid "$SEAWALL" serve --host 127.0.0.1 --port $SW_PORT --data-dir run/s3/seawall-data \
    >run/s3/seawall.log 2>&1 </dev/null &
  local launcher=$!
  echo $launcher >run/s3/seawall.pid
  wait_http "http://127.0.0.1:$SW_PORT/v2/"
  for _ in $(seq 50); do pgrep -P "$launcher" && return 0; sleep 0.1; done
  echo "seawall did not start" >&2; cat run/s3/seawall.log >&2; return 1
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

measure() {  # measure SERVER REDIRECT PHASES URL PID [bench args...]
  local server=$1 redirect=$2 phases=$3 url=$4 pid=$5; shift 5
  local flag peakfile line
  flag=$(mktemp); peakfile=$(mktemp)
  (rss_watch "$pid" "$flag" >"$peakfile") &
  local watcher=$!
  line=$($PY bench_registry.py "$url" --corpus "$corpus" --phases "$phases" --server-pid "$pid" \
    --label "$server-s3-redirect-$redirect" "$@")
  rm -f "$flag"; wait "$watcher"
  SERVER=$server REDIRECT=$redirect PEAK=$(cat "$peakfile") COMMIT=$commit $PY -c '
import json, os, sys
d = json.loads(sys.stdin.read())
d.update(server=os.environ["SERVER"], storage="s3-moto", redirect=os.environ["REDIRECT"] == "true",
         server_peak_rss_mib=round(int(os.environ["PEAK"] or 0) / 1024, 1), commit=os.environ["COMMIT"])
print(json.dumps(d))' <<<"$line" | tee -a "$out"
  rm -f "$peakfile"
}

start_moto
for i in $(seq "$n"); do
  pid=$(start_distribution "dist-$i" false)
  measure distribution false push,pull "http://127.0.0.1:$DIST_PORT" "$pid"
  stop_group run/s3/dist.pid
  pid=$(start_distribution "dist-$i" true)
  measure distribution true pull "http://127.0.0.1:$DIST_PORT" "$pid"
  stop_group run/s3/dist.pid; reset_moto
  pid=$(start_seawall "seawall-$i" false)
  measure seawall false push,pull "http://127.0.0.1:$SW_PORT" "$pid" --user admin --password benchpw
  stop_group run/s3/seawall.pid
  pid=$(start_seawall "seawall-$i" true keep)
  measure seawall true pull "http://127.0.0.1:$SW_PORT" "$pid" --user admin --password benchpw
  stop_group run/s3/seawall.pid; reset_moto
done

stamp() {  # the commit on each JSON line
  COMMIT=$commit $PY -c 'import json, os, sys
for line in sys.stdin: print(json.dumps(json.loads(line) | {"commit": os.environ["COMMIT"]}))'
}

big=${BIG_MIB:-2048}
if [ "$big" -gt 0 ]; then  # bytes through the server both ways: redirects off
  pid=$(start_distribution dist-big false)
  $PY big_blob.py "http://127.0.0.1:$DIST_PORT" --server-pid "$pid" --size-mib "$big" \
    --label distribution-s3 | stamp | tee -a results/s3-big-blob.jsonl
  stop_group run/s3/dist.pid; reset_moto
  pid=$(start_seawall seawall-big false)
  $PY big_blob.py "http://127.0.0.1:$SW_PORT" --server-pid "$pid" --size-mib "$big" \
    --label seawall-s3 --user admin --password benchpw | stamp | tee -a results/s3-big-blob.jsonl
  stop_group run/s3/seawall.pid; reset_moto
fi
