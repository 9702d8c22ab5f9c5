#!/usr/bin/env bash
# A quick run of every pigeon-bench scenario over both transports against a real pigeond on
# port 0, so that the load generator cannot silently break. Tiny numbers: the figures are not
# checked here (bench/RESULTS.md has the real runs), only that each run completes with no
# lost, duplicated or out-of-order message and no failed connection (pigeon-bench exits
# non-zero otherwise), and that pigeond exits cleanly afterwards.
#   usage: bench_smoke.sh <pigeond> <pigeon-bench>
set -euo pipefail
pigeond=$1
bench=$2
dir=$(mktemp -d /tmp/pigeon-bench-smoke-XXXXXX)
pid=
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  rm -rf "$dir"
}
trap cleanup EXIT

"$pigeond" --host 127.0.0.1 --http-port 0 --tcp-port 0 --data-dir "$dir/data" \
  --ready-file "$dir/ready.json" --password-cost min --rate-limit 0 --frame-rate 0 \
  --log-level warn &
pid=$!
for _ in $(seq 1 300); do
  [[ -f $dir/ready.json ]] && break
  kill -0 "$pid" || { echo "pigeond exited at start"; exit 1; }
  sleep 0.1
done
[[ -f $dir/ready.json ]] || { echo "pigeond did not start"; exit 1; }
http_port=$(sed 's/.*"http_port":\([0-9]*\).*/\1/' "$dir/ready.json")
server=http://127.0.0.1:$http_port

run() {
  echo "== pigeon-bench $*"
  "$bench" "$@" --server "$server"
}
for transport in tcp ws; do
  run idle --transport "$transport" --connections 40 --hold 1 --pid "$pid"
  run pairs --transport "$transport" --pairs 3 --window 4 --duration 1
  run fanout --transport "$transport" --members 20 --publishers 2 --window 4 --duration 1
  run storm --transport "$transport" --devices 30 --messages 5
done
# Several worker processes and source addresses, results merged.
run pairs --transport tcp --pairs 4 --window 4 --duration 1 --processes 2 --sources 2
run idle --transport ws --connections 60 --hold 1 --processes 3 --sources 3

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
if [[ $status -ne 0 ]]; then
  echo "pigeond exited with $status on SIGTERM"
  exit 1
fi
echo "bench smoke: all scenarios passed"
