#!/usr/bin/env bash
# Builds aistor and runs it on this machine until Ctrl-C: a coordinator, an agent and
# (as root) the local runtime, so `aistorctl apply -f deploy/examples/...` runs pods.
#   AISTOR_GRPC_ADDR   coordinator gRPC address   (default 127.0.0.1:50051)
#   AISTOR_AGENT_ADDR  coordinator's agent listener, mutual TLS (default 127.0.0.1:50052)
#   AISTOR_NODE_NAME   this node's name           (default the host name)
#   AISTOR_HTTP_ADDR   coordinator REST address   (default 127.0.0.1:8080)
#   AISTOR_ADMIN_ADDR  agent /metrics address     (default 127.0.0.1:9101)
#   AISTOR_INTERVAL    agent collection interval  (default 1s)
#   AISTOR_DATA_DIR    coordinator state (SQLite)  (default .aistor/coordinator)
#   AISTOR_STATE_DIR   certificates, the private containerd's root, the local runtime's
#                      pod, volume and checkpoint directories (default .aistor)
#   AISTOR_RUN_DIR     logs and the private containerd's socket and state (default .aistor-run)
#   AISTOR_LOCAL_RUNTIME  0 turns the local runtime off (default on as root)
#   AISTOR_CONTAINERD_SOCKET  the node's containerd, used when it answers
#                      (default /run/containerd/containerd.sock; else a private one is started)
#   AISTOR_SECOND_NODE  also run a second local node of this name: its own agent, its own
#                      containerd namespace (<name>.aistor) and runtime directory, the same
#                      volume root and checkpoint volume, so pods can migrate between nodes
#   AISTOR_SECOND_ADMIN_ADDR  the second agent's /metrics address (default 127.0.0.1:9102)
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

grpc="${AISTOR_GRPC_ADDR:-127.0.0.1:50051}"
agents="${AISTOR_AGENT_ADDR:-127.0.0.1:50052}"
node="${AISTOR_NODE_NAME:-$(cat /proc/sys/kernel/hostname)}"
http="${AISTOR_HTTP_ADDR:-127.0.0.1:8080}"
admin="${AISTOR_ADMIN_ADDR:-127.0.0.1:9101}"
interval="${AISTOR_INTERVAL:-1s}"
data_dir="${AISTOR_DATA_DIR:-.aistor/coordinator}"
run_dir="$(realpath -m "${AISTOR_RUN_DIR:-.aistor-run}")"
state_dir="$(realpath -m "${AISTOR_STATE_DIR:-.aistor}")"
node_socket="${AISTOR_CONTAINERD_SOCKET:-/run/containerd/containerd.sock}"
local_runtime="${AISTOR_LOCAL_RUNTIME:-1}"
second="${AISTOR_SECOND_NODE:-}"
second_admin="${AISTOR_SECOND_ADMIN_ADDR:-127.0.0.1:9102}"
if [ "$local_runtime" = 1 ] && [ "$(id -u)" -ne 0 ]; then
  log "the local runtime runs containers and needs root; starting without it (measurement only)"
  local_runtime=0
fi

require_cargo
apt_install protobuf-compiler   # containerd-client generates its gRPC code at build time
[ "$local_runtime" = 1 ] && apt_install containerd runc
log "building release binaries"
cargo build --release --locked --bins

bin="${CARGO_TARGET_DIR:-target}/release"
mkdir -p "$run_dir" "$state_dir"
pids=()
containerd_pid=""
socket=""

# Stops the local runtime's containers (only those: the label says the agent made them);
# the coordinator keeps the desired pods, so the next hack/up.sh starts them again.
stop_pods() {
  stop_pods_in k8s.io
  if [ -n "$second" ]; then stop_pods_in "$second.aistor"; fi
}

stop_pods_in() {
  local ctr=(ctr --address "$socket" --namespace "$1")
  local ids
  ids=$("${ctr[@]}" containers ls -q 'labels."aistor.io/managed-by"==aistor-local-runtime' 2>/dev/null) || return 0
  [ -z "$ids" ] && return 0
  log "stopping the local runtime's containers"
  local uids
  uids=$(for id in $ids; do "${ctr[@]}" containers info "$id" 2>/dev/null \
    | sed -n 's/.*"io.kubernetes.pod.uid": "\([^"]*\)".*/\1/p'; done | sort -u)
  for id in $ids; do "${ctr[@]}" tasks kill --all --signal SIGTERM "$id" >/dev/null 2>&1 || true; done
  for _ in $(seq 1 50); do
    "${ctr[@]}" tasks ls -q 2>/dev/null | grep -qFf <(printf '%s\n' $ids) || break
    sleep 0.1
  done
  for id in $ids; do
    "${ctr[@]}" tasks kill --all --signal SIGKILL "$id" >/dev/null 2>&1 || true
    "${ctr[@]}" tasks delete --force "$id" >/dev/null 2>&1 || true
    "${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true
  done
  # Their pod cgroups, now without processes (rmdir never removes a cgroup that has some).
  local uid d c
  for uid in $uids; do
    for d in /sys/fs/cgroup/kubepods/pod"$uid" /sys/fs/cgroup/kubepods/*/pod"$uid" \
             /sys/fs/cgroup/*/kubepods/pod"$uid" /sys/fs/cgroup/*/kubepods/*/pod"$uid"; do
      [ -d "$d" ] || continue
      for c in "$d"/*/; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
      rmdir "$d" 2>/dev/null || true
    done
  done
}

stop() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    log "stopping aistor"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if [ -n "$socket" ]; then stop_pods; fi
  if [ -n "$containerd_pid" ]; then
    log "stopping the private containerd"
    kill -TERM "$containerd_pid" 2>/dev/null || true
    wait "$containerd_pid" 2>/dev/null || true
  fi
}
trap stop EXIT
trap 'exit 130' INT TERM

# containerd: the node's when it answers, else a private one under the run directory
# (its own root, state and socket; the CRI plugin off, so a kubelet's state is never
# touched).
start_containerd() {
  if [ -S "$node_socket" ] && ctr --address "$node_socket" version >/dev/null 2>&1; then
    socket="$node_socket"
    log "using the node's containerd at $socket"
    return
  fi
  local dir="$run_dir/containerd"
  mkdir -p "$dir"
  socket="$dir/containerd.sock"
  cat >"$dir/config.toml" <<TOML
version = 2
root = "$state_dir/containerd"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$socket"
[ttrpc]
  address = "$socket.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
TOML
  log "starting a private containerd (socket $socket); log: $run_dir/containerd.log"
  # Its own session: the terminal's Ctrl-C must not stop it before its pods are stopped.
  setsid containerd --config "$dir/config.toml" >"$run_dir/containerd.log" 2>&1 &
  containerd_pid=$!
  for _ in $(seq 1 100); do
    ctr --address "$socket" version >/dev/null 2>&1 && return
    kill -0 "$containerd_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "error: containerd did not start; see $run_dir/containerd.log" >&2
  tail -n 20 "$run_dir/containerd.log" >&2
  exit 1
}

# Agents speak mutual TLS: a local CA (made once under $state_dir/pki, reused after)
# signs the coordinator's agent listener and this node's agent certificate, whose
# common name is the only node that agent may report for.
pki="$state_dir/pki"
log "issuing certificates for the coordinator's agent listener and node $node ($pki)"
"$bin/aistor-coordinator" pki --dir "$pki" --node "$node" --host localhost --host "${agents%:*}" >/dev/null
agent_args=(run --coordinator "https://$agents" --node-name "$node"
  --tls-ca "$pki/ca.pem" --tls-cert "$pki/agent-$node.pem" --tls-key "$pki/agent-$node-key.pem"
  --admin-addr "$admin" --interval "$interval")
if [ "$local_runtime" = 1 ]; then
  start_containerd
  mkdir -p "$state_dir/checkpoints"
  agent_args+=(--local-runtime --containerd-socket "$socket"
    --runtime-dir "$state_dir/runtime" --volume-root "$state_dir/volumes"
    --checkpoint-dir "$state_dir/checkpoints")
fi

log "starting aistor-coordinator (gRPC $grpc, REST $http, state in $data_dir); log: $run_dir/coordinator.log"
# Each in its own session: Ctrl-C reaches only this script, which stops them in order
# (agent and coordinator, then the pods, then containerd).
setsid "$bin/aistor-coordinator" run --grpc-addr "$grpc" --http-addr "$http" --data-dir "$data_dir" \
  --agent-addr "$agents" --agent-tls-cert "$pki/coordinator.pem" \
  --agent-tls-key "$pki/coordinator-key.pem" --agent-tls-client-ca "$pki/ca.pem" \
  >"$run_dir/coordinator.log" 2>&1 &
pids+=($!)
log "starting aistor-agent (node $node, over mutual TLS to $agents, interval $interval, metrics $admin); log: $run_dir/agent.log"
setsid "$bin/aistor-agent" "${agent_args[@]}" >"$run_dir/agent.log" 2>&1 &
pids+=($!)
if [ -n "$second" ]; then
  if [ "$local_runtime" != 1 ]; then
    echo "error: AISTOR_SECOND_NODE needs the local runtime (run as root)" >&2
    exit 1
  fi
  "$bin/aistor-coordinator" pki --dir "$pki" --node "$second" --host localhost --host "${agents%:*}" >/dev/null
  log "starting a second aistor-agent (node $second, containerd namespace $second.aistor, metrics $second_admin); log: $run_dir/agent-$second.log"
  setsid "$bin/aistor-agent" run --coordinator "https://$agents" --node-name "$second" \
    --tls-ca "$pki/ca.pem" --tls-cert "$pki/agent-$second.pem" --tls-key "$pki/agent-$second-key.pem" \
    --admin-addr "$second_admin" --interval "$interval" \
    --local-runtime --containerd-socket "$socket" --containerd-namespaces "$second.aistor" \
    --runtime-dir "$state_dir/runtime-$second" --volume-root "$state_dir/volumes" \
    --checkpoint-dir "$state_dir/checkpoints" >"$run_dir/agent-$second.log" 2>&1 &
  pids+=($!)
fi

ctl=("$bin/aistorctl" --server "http://$grpc")
for _ in $(seq 1 100); do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "error: a process exited early; see $run_dir/*.log" >&2; tail -n 20 "$run_dir"/*.log >&2; exit 1; }
  done
  # Ready once the node shows a measured CPU rate (from the second report on).
  if "${ctl[@]}" nodes -o json 2>/dev/null | grep -q '"usage_millicores": [0-9]'; then
    "${ctl[@]}" nodes
    if [ "$local_runtime" = 1 ]; then
      runtime_info="  local runtime pods run on containerd at $socket; try:
    $bin/aistorctl apply -f deploy/examples/seed-003-training-pod.yaml
    $bin/aistorctl get pods -n ml -o wide
    $bin/aistorctl checkpoint tensorflow-ai-workload -n ml   (to $state_dir/checkpoints)
    $bin/aistorctl delete pod tensorflow-ai-workload -n ml
    $bin/aistorctl migrate ml/tensorflow-ai-workload --to ${second:-$node} --wait   (from its checkpoint)
    (the same over REST: POST http://$http/api/v1/migrations, see README.md, Migration)"
    else
      runtime_info="  local runtime off (run as root, AISTOR_LOCAL_RUNTIME=1, to run pods)"
    fi
    cat <<INFO

aistor is running on this machine.
  REST API      http://$http/api/v1/nodes   (health: http://$http/health)
  gRPC API      $grpc   (try: $bin/aistorctl --server http://$grpc top nodes)
  agents        $agents over mutual TLS (certificates in $pki)
  agent metrics http://$admin/metrics
  coordinator   http://$http/metrics
$runtime_info
Press Ctrl-C to stop (pods stop too; the coordinator keeps them and starts them next time).
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
