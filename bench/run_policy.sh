#!/bin/bash
# One run of a replication policy on a running Seawall, for bench_sync.sh's SYNC_CMD: start an
# execution through the management API and wait for its end (curl: ~8 ms a call, no interpreter
# start-up in the time measured; ?wait= answers as soon as the run ends). Exit 1 unless it Succeeds.
#   run_policy.sh URL USER:PASSWORD POLICY_ID      (policy_setup.py makes the policy)
set -euo pipefail
url=${1:?URL}/api/v2.0 creds=${2:?USER:PASSWORD} policy=${3:?POLICY_ID}
location=$(curl -sSf -u "$creds" -o /dev/null -D - -H 'Content-Type: application/json' \
  -d "{\"policy_id\": $policy}" "$url/replication/executions" | tr -d '\r' |
  awk 'tolower($1) == "location:" {print $2}')
id=${location##*/}
[ -n "$id" ] || { echo "no execution started" >&2; exit 1; }
for _ in $(seq 360); do  # an hour
  status=$(curl -sSf -u "$creds" "$url/replication/executions/$id?wait=10" |
    sed -n 's/.*"status": *"\([A-Za-z]*\)".*/\1/p')
  case $status in
  InProgress | Pending | "") ;;  # the GET waited up to 10 s for the end
  Succeed) exit 0 ;;
  *) echo "execution $id: $status" >&2; curl -sS -u "$creds" "$url/replication/executions/$id" >&2; exit 1 ;;
  esac
done
echo "execution $id did not end" >&2; exit 1
