#!/usr/bin/env bash
# Agent overhead vs node_exporter, measured side by side in one run.
#
#   hack/bench/agent-overhead.sh [SECONDS]     (default 60)
#
# Starts, on 127.0.0.1 only: a coordinator, two agents (interval 1s) and
# prometheus-node-exporter (default collectors). node_exporter and one agent
# ("scraped") have their /metrics fetched every second, as Prometheus would; the
# other agent ("stream only") just streams to the coordinator. After a 5 s warm-up,
# CPU is the utime+stime delta from /proc/<pid>/stat over the measured wall time, and
# RSS is VmRSS from /proc/<pid>/status sampled every second. Prints a table and the
# targets as PASS/MISS lines; exits non-zero only when something failed to start.
#
# Environment: WARMUP (seconds, default 5), KEEP_TMP=1 keeps the logs, AGENT_BIN and
# COORD_BIN use other builds than target/release (e.g. an older commit's agent),
# AGENT_ARGS adds flags to both agents (e.g. AGENT_ARGS='--workload-cgroups system.slice/*').
set -euo pipefail

SECONDS_TO_MEASURE="${1:-60}"
WARMUP="${WARMUP:-5}"
case "$SECONDS_TO_MEASURE" in '' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
AGENT_BIN="${AGENT_BIN:-$ROOT/target/release/aistor-agent}"
COORD_BIN="${COORD_BIN:-$ROOT/target/release/aistor-coordinator}"
NODE_EXPORTER=/usr/bin/prometheus-node-exporter
TMP="$(mktemp -d -t aistor-bench.XXXXXX)"
read -r -a EXTRA_AGENT_ARGS <<<"${AGENT_ARGS:-}"
PIDS=()

cleanup() {
    local pid i
    # Newest first: scrapers, agents, then what they talk to.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[$i]}" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "agent-overhead: $*" >&2
    exit 1
}

# --- prerequisites -------------------------------------------------------------
if [ ! -x "$NODE_EXPORTER" ] || ! command -v curl >/dev/null; then
    echo "installing prometheus-node-exporter and curl" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq prometheus-node-exporter curl >&2 || die "apt-get install failed"
fi
# The package may start its own service; a second exporter would skew the host, so
# stop it (without systemd there is none).
if pgrep -x prometheus-node >/dev/null || pgrep -f '^/usr/bin/prometheus-node-exporter' >/dev/null; then
    if command -v systemctl >/dev/null && systemctl stop prometheus-node-exporter 2>/dev/null; then
        echo "stopped the prometheus-node-exporter service" >&2
    else
        echo "warning: a prometheus-node-exporter is already running (not ours); left alone" >&2
    fi
fi
if [ ! -x "$AGENT_BIN" ] || [ ! -x "$COORD_BIN" ]; then
    echo "building release binaries" >&2
    cargo build --release -p aistor-agent -p aistor-coordinator >&2 || die "cargo build failed"
fi

# --- helpers -------------------------------------------------------------------
# port_in_use, free_port, wait_http
source "$(dirname "$0")/lib.sh"
cpu_ticks() { # PID -> utime+stime (fields 14 and 15; the command name may hold spaces)
    local s
    s="$(cat "/proc/$1/stat")" || return 1
    s="${s##*) }"
    # shellcheck disable=SC2086
    set -- $s
    echo $((${12} + ${13}))
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
now_ns() { date +%s%N; }

GRPC_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
AGENT_PORT="$(free_port)"
AGENT2_PORT="$(free_port)"
NE_PORT="$(free_port)"

# --- start everything ----------------------------------------------------------
"$COORD_BIN" run --grpc-addr "127.0.0.1:$GRPC_PORT" --http-addr "127.0.0.1:$HTTP_PORT" \
    >"$TMP/coordinator.log" 2>&1 &
COORD_PID=$!
PIDS+=("$COORD_PID")
"$NODE_EXPORTER" --web.listen-address="127.0.0.1:$NE_PORT" >"$TMP/node_exporter.log" 2>&1 &
NE_PID=$!
PIDS+=("$NE_PID")
wait_http "http://127.0.0.1:$HTTP_PORT/metrics" "$COORD_PID" coordinator
"$AGENT_BIN" run --coordinator "http://127.0.0.1:$GRPC_PORT" --interval 1s \
    --admin-addr "127.0.0.1:$AGENT_PORT" --node-name bench "${EXTRA_AGENT_ARGS[@]}" >"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
"$AGENT_BIN" run --coordinator "http://127.0.0.1:$GRPC_PORT" --interval 1s \
    --admin-addr "127.0.0.1:$AGENT2_PORT" --node-name bench-stream-only "${EXTRA_AGENT_ARGS[@]}" >"$TMP/agent2.log" 2>&1 &
AGENT2_PID=$!
PIDS+=("$AGENT2_PID")
wait_http "http://127.0.0.1:$NE_PORT/metrics" "$NE_PID" node_exporter
wait_http "http://127.0.0.1:$AGENT_PORT/ready" "$AGENT_PID" agent
wait_http "http://127.0.0.1:$AGENT2_PORT/ready" "$AGENT2_PID" agent2

# A scraper per scraped target: one GET each second (curl in the background so the
# cadence stays 1 s), recording the body size.
scrape_loop() { # URL OUTFILE
    while :; do
        curl -fsS -o /dev/null -w '%{size_download}\n' "$1" >>"$2" 2>/dev/null &
        sleep 1
    done
}
scrape_loop "http://127.0.0.1:$NE_PORT/metrics" "$TMP/ne.sizes" &
PIDS+=("$!")
scrape_loop "http://127.0.0.1:$AGENT_PORT/metrics" "$TMP/agent.sizes" &
PIDS+=("$!")
# What the agent measured matters more than anything else for its cost: count the
# cgroups it reported (cAdvisor's container_cpu_usage_seconds_total, one series per
# pod and container cgroup; Kubernetes pods or cgroups in the kubepods layout).
count_cgroups() {
    curl -fsS "http://127.0.0.1:$AGENT_PORT/metrics" 2>/dev/null |
        grep -c '^container_cpu_usage_seconds_total' || true
}

sleep "$WARMUP"

# --- measure -------------------------------------------------------------------
NAMES=(agent agent2 node_exporter coordinator)
declare -A PID_OF=([agent]=$AGENT_PID [agent2]=$AGENT2_PID [node_exporter]=$NE_PID [coordinator]=$COORD_PID)
declare -A T0 RSS_SUM RSS_MAX
for n in "${NAMES[@]}"; do
    T0[$n]="$(cpu_ticks "${PID_OF[$n]}")" || die "$n is not running"
    RSS_SUM[$n]=0
    RSS_MAX[$n]=0
done
NE_LINES0="$(wc -l <"$TMP/ne.sizes")"
AG_LINES0="$(wc -l <"$TMP/agent.sizes")"
CGROUPS_BEFORE="$(count_cgroups)"
W0="$(now_ns)"
samples=0
for _ in $(seq 1 "$SECONDS_TO_MEASURE"); do
    sleep 1
    for n in "${NAMES[@]}"; do
        r="$(rss_kib "${PID_OF[$n]}")" || die "$n exited during the measurement"
        RSS_SUM[$n]=$((RSS_SUM[$n] + r))
        if [ "$r" -gt "${RSS_MAX[$n]}" ]; then RSS_MAX[$n]=$r; fi
    done
    samples=$((samples + 1))
done
declare -A T1
for n in "${NAMES[@]}"; do
    T1[$n]="$(cpu_ticks "${PID_OF[$n]}")" || die "$n exited during the measurement"
done
W1="$(now_ns)"
CGROUPS_AFTER="$(count_cgroups)"
HZ="$(getconf CLK_TCK)"

# --- report --------------------------------------------------------------------
declare -A CPU_M RSS_MEAN RSS_PEAK
for n in "${NAMES[@]}"; do
    CPU_M[$n]="$(awk -v d=$((T1[$n] - T0[$n])) -v hz="$HZ" -v ns=$((W1 - W0)) \
        'BEGIN { printf "%.1f", d / hz / (ns / 1e9) * 1000 }')"
    RSS_MEAN[$n]="$(awk -v s="${RSS_SUM[$n]}" -v k="$samples" 'BEGIN { printf "%.1f", s / k / 1024 }')"
    RSS_PEAK[$n]="$(awk -v s="${RSS_MAX[$n]}" 'BEGIN { printf "%.1f", s / 1024 }')"
done
mean_size() { # FILE FROM_LINE -> mean bytes and count of the scrapes in the window
    tail -n +"$(($2 + 1))" "$1" | awk '$1 > 0 { s += $1; n++ } END { if (n) printf "%.0f %d", s / n, n; else print "n/a 0" }'
}
read -r NE_BYTES NE_SCRAPES <<<"$(mean_size "$TMP/ne.sizes" "$NE_LINES0")"
read -r AG_BYTES AG_SCRAPES <<<"$(mean_size "$TMP/agent.sizes" "$AG_LINES0")"
WALL="$(awk -v ns=$((W1 - W0)) 'BEGIN { printf "%.1f", ns / 1e9 }')"
NE_VERSION="$("$NODE_EXPORTER" --version 2>&1 | awk 'NR == 1 { print $3 }')"

echo "aistor agent overhead vs prometheus-node-exporter $NE_VERSION"
echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)  host $(nproc) vCPU, kernel $(uname -r)  window ${WALL}s after ${WARMUP}s warm-up  CLK_TCK $HZ  loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "binaries: $AGENT_BIN, $COORD_BIN${AGENT_ARGS:+  agent args: $AGENT_ARGS}"
echo "agent: --interval 1s, streaming to a local coordinator; node_exporter: default collectors; scraped = GET /metrics every 1s"
echo
printf '%-40s %15s %13s %12s %16s\n' process cpu_millicores rss_mean_mib rss_max_mib bytes_per_scrape
printf '%-40s %15s %13s %12s %16s\n' "aistor-agent (stream + scraped 1s)" "${CPU_M[agent]}" "${RSS_MEAN[agent]}" "${RSS_PEAK[agent]}" "$AG_BYTES"
printf '%-40s %15s %13s %12s %16s\n' "aistor-agent (stream only)" "${CPU_M[agent2]}" "${RSS_MEAN[agent2]}" "${RSS_PEAK[agent2]}" "-"
printf '%-40s %15s %13s %12s %16s\n' "prometheus-node-exporter (scraped 1s)" "${CPU_M[node_exporter]}" "${RSS_MEAN[node_exporter]}" "${RSS_PEAK[node_exporter]}" "$NE_BYTES"
printf '%-40s %15s %13s %12s %16s\n' "aistor-coordinator (2 agents, context)" "${CPU_M[coordinator]}" "${RSS_MEAN[coordinator]}" "${RSS_PEAK[coordinator]}" "-"
echo "scrapes in window: agent $AG_SCRAPES, node_exporter $NE_SCRAPES; RSS samples: $samples"
echo "cgroups (pods + containers) the agent reported: $CGROUPS_BEFORE at the window's start, $CGROUPS_AFTER at its end (node_exporter collects none)"
echo

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
R1="$(ratio "${CPU_M[agent]}" "${CPU_M[node_exporter]}")"
R2="$(ratio "${CPU_M[agent2]}" "${CPU_M[node_exporter]}")"
echo "cpu ratio agent/node_exporter: ${R1}x (agent scraped), ${R2}x (agent stream only)"
verdict() { if awk -v v="$1" -v t="$2" 'BEGIN { exit !(v <= t) }'; then echo PASS; else echo MISS; fi; }
echo "target cpu <= 0.5x node_exporter (agent scraped):     $(verdict "$R1" 0.5)  (${R1}x)"
echo "target cpu <= 0.5x node_exporter (agent stream only): $(verdict "$R2" 0.5)  (${R2}x)"
echo "target rss <= 20 MiB (agent scraped, max):             $(verdict "${RSS_PEAK[agent]}" 20)  (${RSS_PEAK[agent]} MiB)"
echo "target rss <= 20 MiB (agent stream only, max):         $(verdict "${RSS_PEAK[agent2]}" 20)  (${RSS_PEAK[agent2]} MiB)"
echo "note: CPU resolution is one clock tick (1/$HZ s) over ${WALL}s; the host has $(nproc) vCPU shared with whatever else runs (see loadavg); all rows come from the same window."
