#!/bin/bash
# Start/stop a throwaway Seawall registry (`seawall serve`), registry.sh's interface.
#   seawall_registry.sh start NAME PORT   # fresh, empty data dir; prints the launcher's PID
#   seawall_registry.sh stop NAME         # stops its whole process group (launcher + workers)
# State lives in $RUN_DIR/seawall-NAME (data/, pid, log); data/ is removed on stop. Listens on
# 127.0.0.1 only; account admin / $SEAWALL_BENCH_PASSWORD (default benchpw).
# Auth: bearer tokens only on /v2/ (auth.basic_on_registry=false), i.e. the Docker token flow that
# real clients use; skopeo, `seawall sync` and bench_registry.py all follow the Bearer challenge.
set -euo pipefail
RUN_DIR=${RUN_DIR:-$(cd "$(dirname "$0")" && pwd)/run}
SEAWALL=${SEAWALL:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/seawall}
cmd=${1:?start|stop} name=${2:?NAME} dir=$RUN_DIR/seawall-$2

alive() {  # any non-zombie process left in process group $1?
  ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {found = 1} END {exit !found}'
}

stop() {
  [ -f "$dir/pid" ] || return 0
  local pg; pg=$(cat "$dir/pid")  # the launcher ran under setsid: its PID is its process group
  kill -TERM -- "-$pg" 2>/dev/null || true
  for _ in $(seq 100); do alive "$pg" || break; sleep 0.1; done
  if alive "$pg"; then
    kill -KILL -- "-$pg" 2>/dev/null || true
    for _ in $(seq 20); do alive "$pg" || break; sleep 0.1; done
  fi
  alive "$pg" && { echo "seawall $name (process group $pg) did not stop" >&2; return 1; }
  rm -f "$dir/pid"; rm -rf "$dir/data"
}

case $cmd in
start)
  port=${3:?PORT}
  stop; rm -rf "$dir"; mkdir -p "$dir"
  # setsid: a new session and process group led by the launcher, so stop reaches its workers too
  SEAWALL_ADMIN_PASSWORD=${SEAWALL_BENCH_PASSWORD:-benchpw} SEAWALL_LOG_LEVEL=warning \
    SEAWALL_AUTH__BASIC_ON_REGISTRY=false \
    setsid "$SEAWALL" serve --host 127.0.0.1 --port "$port" --data-dir "$dir/data" \
    >"$dir/log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  for _ in $(seq 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
    if [[ $code == 200 || $code == 401 ]]; then
      # setsid did not fork (this script's background job leads no group), so PID = process group
      [ "$(ps -o pgid= -p "$(cat "$dir/pid")" | tr -d ' ')" = "$(cat "$dir/pid")" ] ||
        { echo "seawall $name: launcher is not its process group's leader" >&2; exit 1; }
      cat "$dir/pid"; exit 0
    fi
    sleep 0.1
  done
  echo "seawall $name did not come up on :$port" >&2; cat "$dir/log" >&2; stop; exit 1 ;;
stop) stop ;;
*) echo "usage: $0 start NAME PORT | stop NAME" >&2; exit 2 ;;
esac
