#!/usr/bin/env bash
# Builds aistor and runs a coordinator and an agent on this machine until Ctrl-C.
#   AISTOR_GRPC_ADDR   coordinator gRPC address   (default 127.0.0.1:50051)
#   AISTOR_HTTP_ADDR   coordinator REST address   (default 127.0.0.1:8080)
#   AISTOR_ADMIN_ADDR  agent /metrics address     (default 127.0.0.1:9101)
#   AISTOR_INTERVAL    agent collection interval  (default 1s)
#   AISTOR_DATA_DIR    coordinator state (SQLite)  (default .aistor/coordinator)
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

grpc="${AISTOR_GRPC_ADDR:-127.0.0.1:50051}"
http="${AISTOR_HTTP_ADDR:-127.0.0.1:8080}"
admin="${AISTOR_ADMIN_ADDR:-127.0.0.1:9101}"
interval="${AISTOR_INTERVAL:-1s}"
data_dir="${AISTOR_DATA_DIR:-.aistor/coordinator}"
run_dir=".aistor-run"

require_cargo
apt_install protobuf-compiler   # containerd-client generates its gRPC code at build time
log "building release binaries"
cargo build --release --locked --bins

bin=target/release
mkdir -p "$run_dir"
pids=()
stop() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    log "stopping aistor"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop EXIT
trap 'exit 130' INT TERM

log "starting aistor-coordinator (gRPC $grpc, REST $http, state in $data_dir); log: $run_dir/coordinator.log"
"$bin/aistor-coordinator" run --grpc-addr "$grpc" --http-addr "$http" --data-dir "$data_dir" \
  >"$run_dir/coordinator.log" 2>&1 &
pids+=($!)
log "starting aistor-agent (interval $interval, metrics $admin); log: $run_dir/agent.log"
"$bin/aistor-agent" run --coordinator "http://$grpc" --admin-addr "$admin" --interval "$interval" \
  >"$run_dir/agent.log" 2>&1 &
pids+=($!)

ctl=("$bin/aistorctl" --server "http://$grpc")
for _ in $(seq 1 100); do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "error: a process exited early; see $run_dir/*.log" >&2; tail -n 20 "$run_dir"/*.log >&2; exit 1; }
  done
  # Ready once the node shows a measured CPU rate (from the second report on).
  if "${ctl[@]}" nodes -o json 2>/dev/null | grep -q '"usage_millicores": [0-9]'; then
    "${ctl[@]}" nodes
    cat <<INFO

aistor is running on this machine.
  REST API      http://$http/api/v1/nodes   (health: http://$http/health)
  gRPC API      $grpc   (try: $bin/aistorctl --server http://$grpc top nodes)
  agent metrics http://$admin/metrics
  coordinator   http://$http/metrics
Press Ctrl-C to stop.
INFO
    wait -n "${pids[@]}" || true
    echo "error: a process exited; see $run_dir/*.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "error: the node did not appear within 10s; see $run_dir/*.log" >&2
tail -n 20 "$run_dir"/*.log >&2
exit 1
