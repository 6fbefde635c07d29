#!/usr/bin/env bash
# Runs the autoscaler curl commands of seeds 004 and 000 verbatim against a running
# coordinator (hack/up.sh), printing each command and its answer, then deletes what it
# made. Apply the Deployments they name first:
#   aistorctl apply -f deploy/examples/seed-autoscaling-workloads.yaml
#   AISTOR_URL (default http://localhost:8080)
set -euo pipefail
url="${AISTOR_URL:-http://localhost:8080}"
show() { printf '\n$ %s\n' "$*"; }
call() { curl -sS -w '\n[HTTP %{http_code}]\n' "$@"; }

show "curl -X POST $url/api/v1/autoscaling (seed 004, Create Autoscaler)"
out=$(call -X POST "$url/api/v1/autoscaling" \
  -H "Content-Type: application/json" \
  -d '{
  "workload_name": "nginx-deployment",
  "workload_namespace": "default",
  "workload_type": "Deployment",
  "min_replicas": 2,
  "max_replicas": 10,
  "target_cpu_percent": 70,
  "target_memory_percent": 80,
  "target_gpu_percent": 75,
  "target_storage_read_throughput_mbps": 500,
  "target_storage_write_throughput_mbps": 200,
  "target_storage_iops": 3000,
  "scale_up_policy": {
    "stabilization_window_seconds": 60,
    "max_scale_change": 3
  },
  "scale_down_policy": {
    "stabilization_window_seconds": 300,
    "max_scale_change": 2
  }
}')
echo "$out"
nginx=$(echo "$out" | sed -n 's/.*"autoscaling_id":"\([^"]*\)".*/\1/p' | head -1)

show "curl -X POST $url/api/v1/autoscalers (seed 000, 오토스케일러 생성)"
out=$(call -X POST "$url/api/v1/autoscalers" \
  -H "Content-Type: application/json" \
  -d '{
    "workload_name": "gpu-test-workload",
    "workload_namespace": "default",
    "workload_type": "deployment",
    "min_replicas": 1,
    "max_replicas": 5,
    "target_cpu_percent": 70,
    "target_memory_percent": 80,
    "target_gpu_percent": 60,
    "scale_check_interval": 30
  }')
echo "$out"
gpu=$(echo "$out" | sed -n 's/.*"autoscaling_id":"\([^"]*\)".*/\1/p' | head -1)

show "curl $url/api/v1/autoscalers"
call "$url/api/v1/autoscalers"
show "curl $url/api/v1/autoscaling/$nginx"
call "$url/api/v1/autoscaling/$nginx"
show "curl $url/api/v1/autoscalers/$gpu"
call "$url/api/v1/autoscalers/$gpu"
show "curl $url/api/v1/autoscaling/metrics"
call "$url/api/v1/autoscaling/metrics"
show "curl -X DELETE $url/api/v1/autoscaling/$nginx"
call -X DELETE "$url/api/v1/autoscaling/$nginx"
show "curl -X DELETE $url/api/v1/autoscalers/$gpu"
call -X DELETE "$url/api/v1/autoscalers/$gpu"
show "curl $url/api/v1/autoscaling"
call "$url/api/v1/autoscaling"
