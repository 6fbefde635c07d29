#!/usr/bin/env bash
# Agent overhead at pod scale: 110 pods x 3 containers in real cgroups, against a
# node-only agent measured in the same window.
#
#   hack/bench/pod-overhead.sh [SECONDS]     (default 60; needs root)
#
# Creates kubepods/burstable/pod<uid>/<64-hex id> (the kubelet's cgroupfs-driver layout)
# in every hierarchy the agent reads (v1/hybrid: cpu, cpuacct, memory, blkio, pids, freezer and
# the unified one; v2: the unified one), with a `sleep` in every container cgroup and a
# burner at 5 % of a core in 10 of them. Starts, on 127.0.0.1 only, a coordinator and two
# agents at --interval 1s with no containerd socket, so pods come from the cgroup layout:
#   "pods"     sees the 110 pods;
#   "baseline" is the same command in a private mount namespace where an empty tmpfs
#              hides kubepods/ in every hierarchy: it reads the node and no pods.
# After a 5 s warm-up: CPU is the utime+stime delta from /proc/<pid>/stat over the wall
# time, RSS is VmRSS sampled every second, ticks are the agent's own collections counter
# (aistor_agent_collections_total, scraped just before and after the window). CPU per
# container sample = agent CPU time / (ticks x 330); the per-container cost is the
# difference between the two agents over the same denominator. Then checks with the
# coordinator's REST API that the pods agent reported 110 pods with 3 containers each,
# samples the collect duration, and (with strace) counts the syscalls per cgroup read.
# Prints a table and the targets as PASS/MISS lines; exits non-zero only when something
# failed to start. Everything it started and created is removed on exit, Ctrl-C included.
#
# Environment: WARMUP (seconds, default 5), PODS (110), CONTAINERS (3 per pod), BUSY (10),
# INTERVAL (the agents' --interval, default 1s),
# STRACE=0 skips the strace phase, PERF=SECONDS profiles the pods agent that long with
# `perf record` (cpu-clock at PERF_HZ, default 2999 Hz, DWARF call graphs; after the window,
# like strace) and prints its top symbols, self and with callees (needs perf and a binary with
# symbols: CARGO_PROFILE_RELEASE_STRIP=none; PERF_DATA_OUT=FILE keeps perf.data), KEEP_TMP=1 keeps the logs, AGENT_BIN, COORD_BIN and
# BURNER_BIN use other builds (default: $CARGO_TARGET_DIR or target/, release).
set -euo pipefail

SECONDS_TO_MEASURE="${1:-60}"
WARMUP="${WARMUP:-5}"
PODS="${PODS:-110}"
CONTAINERS="${CONTAINERS:-3}"
BUSY="${BUSY:-10}"
BUSY_DUTY=0.05
INTERVAL="${INTERVAL:-1s}"
case "$SECONDS_TO_MEASURE$PODS$CONTAINERS$BUSY" in '' | *[!0-9]*)
    echo "usage: $0 [SECONDS]   (PODS, CONTAINERS and BUSY must be numbers)" >&2
    exit 2
    ;;
esac
TOTAL_CONTAINERS=$((PODS * CONTAINERS))

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
AGENT_BIN="${AGENT_BIN:-$TARGET/release/aistor-agent}"
COORD_BIN="${COORD_BIN:-$TARGET/release/aistor-coordinator}"
BURNER_BIN="${BURNER_BIN:-$TARGET/release/examples/burner}"
TMP="$(mktemp -d -t aistor-pod-bench.XXXXXX)"
PIDS=()     # coordinator, agents, scrapers: killed newest first
WORKLOAD=() # sleeps and burners in the container cgroups
CREATED=()  # cgroup directories, parents before children

cleanup() {
    local i pid dir
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[$i]}" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "${#WORKLOAD[@]}" -gt 0 ]; then
        kill "${WORKLOAD[@]}" 2>/dev/null || true
        for pid in "${WORKLOAD[@]}"; do
            wait "$pid" 2>/dev/null || true
        done
    fi
    # Children before parents; a cgroup whose last task is still exiting is busy for a moment.
    for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do
        dir="${CREATED[$i]}"
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            rmdir "$dir" 2>/dev/null && break
            [ -d "$dir" ] || break
            sleep 0.1
        done
        [ -d "$dir" ] && echo "pod-overhead: could not remove $dir" >&2
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
    echo "pod-overhead: $*" >&2
    exit 1
}

# --- prerequisites -------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "needs root (it creates cgroups)"
if ! command -v curl >/dev/null || ! command -v jq >/dev/null; then
    echo "installing curl and jq" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq curl jq >&2 || die "apt-get install failed"
fi
command -v unshare >/dev/null || die "unshare (util-linux) is needed for the baseline agent"
if [ ! -x "$AGENT_BIN" ] || [ ! -x "$COORD_BIN" ] || [ ! -x "$BURNER_BIN" ]; then
    echo "building release binaries" >&2
    cargo build --release -p aistor-agent -p aistor-coordinator --bins >&2 || die "cargo build failed"
    cargo build --release -p aistor-agent --example burner >&2 || die "cargo build failed"
fi

# --- cgroup hierarchies --------------------------------------------------------
# Mount points of the hierarchies the agent reads, from mountinfo: "<id> <parent> <dev>
# <root> <mount point> <options> [optional...] - <fstype> <source> <super options>".
MOUNTS=()
UNIFIED=""
add_mount() { # PATH, once
    local m
    for m in "${MOUNTS[@]}"; do [ "$m" = "$1" ] && return 0; done
    MOUNTS+=("$1")
}
while read -r point fstype opts; do
    case "$fstype" in
    cgroup2) UNIFIED="$point" ;;
    cgroup)
        for controller in cpu cpuacct memory blkio pids freezer; do
            case ",$opts," in *",$controller,"*) add_mount "$point" ;; esac
        done
        ;;
    esac
done < <(awk '{ for (i = 7; $i != "-"; i++); print $5, $(i + 1), $(i + 3) }' /proc/1/mountinfo)
if [ "${#MOUNTS[@]}" -gt 0 ]; then
    MODE=hybrid
    [ -n "$UNIFIED" ] || MODE=v1
else
    [ -n "$UNIFIED" ] || die "no cgroup hierarchy is mounted"
    MODE=v2
fi
[ -n "$UNIFIED" ] && add_mount "$UNIFIED"
# When kubepods/ exists (a kubelet's, or another run's leftovers), it is not touched: the tree is
# made under a private parent instead and bind-mounted over kubepods/ in the pods agent's own
# mount namespace, so that agent sees only this run's pods (the baseline hides kubepods/ anyway).
PREFIX=""
for m in "${MOUNTS[@]}"; do
    if [ -e "$m/kubepods" ]; then
        PREFIX="aistor-pod-bench-$$/"
        echo "$m/kubepods exists: not touching it; this run's pods go under $m/${PREFIX}kubepods, bind-mounted over kubepods/ for the pods agent only" >&2
        break
    fi
done
for m in "${MOUNTS[@]}"; do
    if [ -z "$PREFIX" ] && [ -e "$m/kubepods" ]; then die "$m/kubepods appeared meanwhile"; fi
    if [ -n "$PREFIX" ] && [ ! -d "$m/kubepods" ]; then
        die "$m/kubepods is missing where other hierarchies have it: a partial tree; not touching it"
    fi
done

make_cgroup() { # REL: in every hierarchy, remembered for removal
    local m
    for m in "${MOUNTS[@]}"; do
        mkdir "$m/$1" || die "mkdir $m/$1"
        CREATED+=("$m/$1")
        if [ "$MODE" = v2 ]; then
            # v2: a child has the controllers' files only when its parent delegates them.
            echo "+cpu +memory +io +pids" >"$(dirname "$m/$1")/cgroup.subtree_control" ||
                die "enabling controllers above $m/$1"
        fi
    done
}
start_in() { # REL COMMAND...: runs COMMAND inside cgroup REL (joined before exec)
    local rel="$1" m procs=()
    shift
    for m in "${MOUNTS[@]}"; do procs+=("$m/$rel/cgroup.procs"); done
    sh -c 'n=$1; shift; i=0; while [ $i -lt "$n" ]; do echo $$ >"$1" || exit 1; shift; i=$((i + 1)); done; exec "$@"' \
        sh "${#procs[@]}" "${procs[@]}" "$@" </dev/null >/dev/null 2>>"$TMP/workload.log" &
    WORKLOAD+=("$!")
}

echo "creating $PODS pods x $CONTAINERS containers in ${#MOUNTS[@]} hierarchies ($MODE)" >&2
[ -n "$PREFIX" ] && make_cgroup "${PREFIX%/}"
make_cgroup "${PREFIX}kubepods"
make_cgroup "${PREFIX}kubepods/burstable"
busy_left=$BUSY
for ((p = 0; p < PODS; p++)); do
    uid="$(cat /proc/sys/kernel/random/uuid)"
    pod="${PREFIX}kubepods/burstable/pod$uid"
    make_cgroup "$pod"
    for ((c = 0; c < CONTAINERS; c++)); do
        id="$(printf '%s-%d' "$uid" "$c" | sha256sum | cut -c1-64)"
        make_cgroup "$pod/$id"
        start_in "$pod/$id" sleep 3600
        if [ "$c" = 0 ] && [ "$busy_left" -gt 0 ]; then
            start_in "$pod/$id" "$BURNER_BIN" "$BUSY_DUTY" --seconds 3600
            busy_left=$((busy_left - 1))
        fi
    done
done
sleep 0.5
for pid in "${WORKLOAD[@]}"; do
    kill -0 "$pid" 2>/dev/null || die "a workload process exited at start (log: $TMP/workload.log)"
done

# --- helpers -------------------------------------------------------------------
# port_in_use, free_port, wait_http
source "$(dirname "$0")/lib.sh"
cpu_ticks() { # PID -> "utime stime" (fields 14 and 15; the command name may hold spaces)
    local s
    s="$(cat "/proc/$1/stat")" || return 1
    s="${s##*) }"
    # shellcheck disable=SC2086
    set -- $s
    echo "${12} ${13}"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
now_ns() { date +%s%N; }
metric() { # PORT NAME -> value of an unlabelled metric on the agent's /metrics
    curl -fsS "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n && !found { print $2; found = 1 }'
}
collections() { # PORT -> the agent's collections counter, as an integer
    metric "$1" aistor_agent_collections_total | awk '{ printf "%d", $1 }'
}

GRPC_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
PODS_PORT="$(free_port)"
BASE_PORT="$(free_port)"

# --- start the coordinator and the agents --------------------------------------
"$COORD_BIN" run --grpc-addr "127.0.0.1:$GRPC_PORT" --http-addr "127.0.0.1:$HTTP_PORT" \
    >"$TMP/coordinator.log" 2>&1 &
COORD_PID=$!
PIDS+=("$COORD_PID")
wait_http "http://127.0.0.1:$HTTP_PORT/health" "$COORD_PID" coordinator
AGENT_ARGS=(run --coordinator "http://127.0.0.1:$GRPC_PORT" --interval "$INTERVAL" --containerd-socket /nonexistent)
if [ -z "$PREFIX" ]; then
    "$AGENT_BIN" "${AGENT_ARGS[@]}" --admin-addr "127.0.0.1:$PODS_PORT" --node-name bench-pods \
        >"$TMP/agent-pods.log" 2>&1 &
else
    BIND=""
    for m in "${MOUNTS[@]}"; do BIND="$BIND mount --bind '$m/${PREFIX}kubepods' '$m/kubepods' || exit 1;"; done
    # shellcheck disable=SC2016
    unshare --mount --propagation private sh -c "$BIND"' exec "$@"' sh \
        "$AGENT_BIN" "${AGENT_ARGS[@]}" --admin-addr "127.0.0.1:$PODS_PORT" --node-name bench-pods \
        >"$TMP/agent-pods.log" 2>&1 &
fi
PODS_PID=$!
PIDS+=("$PODS_PID")
# The same agent with kubepods/ hidden by an empty tmpfs in a private mount namespace;
# unshare and sh exec, so the pid is the agent's.
MASK=""
for m in "${MOUNTS[@]}"; do MASK="$MASK mount -t tmpfs -o size=4k,mode=755 aistor-bench-mask '$m/kubepods' || exit 1;"; done
# shellcheck disable=SC2016
unshare --mount --propagation private sh -c "$MASK"' exec "$@"' sh \
    "$AGENT_BIN" "${AGENT_ARGS[@]}" --admin-addr "127.0.0.1:$BASE_PORT" --node-name bench-baseline \
    >"$TMP/agent-baseline.log" 2>&1 &
BASE_PID=$!
PIDS+=("$BASE_PID")
wait_http "http://127.0.0.1:$PODS_PORT/ready" "$PODS_PID" agent-pods
wait_http "http://127.0.0.1:$BASE_PORT/ready" "$BASE_PID" agent-baseline
[ "$(readlink "/proc/$BASE_PID/exe")" = "$(readlink -f "$AGENT_BIN")" ] ||
    die "the baseline pid $BASE_PID is not the agent ($(readlink "/proc/$BASE_PID/exe"))"
[ "$(readlink "/proc/$PODS_PID/exe")" = "$(readlink -f "$AGENT_BIN")" ] ||
    die "the pods pid $PODS_PID is not the agent ($(readlink "/proc/$PODS_PID/exe"))"

sleep "$WARMUP"

# --- measure -------------------------------------------------------------------
NAMES=(pods baseline)
declare -A PID_OF=([pods]=$PODS_PID [baseline]=$BASE_PID) PORT_OF=([pods]=$PODS_PORT [baseline]=$BASE_PORT)
declare -A U0 S0 U1 S1 C0 C1 RSS_SUM RSS_MAX
for n in "${NAMES[@]}"; do
    C0[$n]="$(collections "${PORT_OF[$n]}")" || die "$n: no /metrics"
done
for n in "${NAMES[@]}"; do
    read -r "U0[$n]" "S0[$n]" <<<"$(cpu_ticks "${PID_OF[$n]}")" || die "agent $n is not running"
    RSS_SUM[$n]=0
    RSS_MAX[$n]=0
done
W0="$(now_ns)"
samples=0
for _ in $(seq 1 "$SECONDS_TO_MEASURE"); do
    sleep 1
    for n in "${NAMES[@]}"; do
        r="$(rss_kib "${PID_OF[$n]}")" || die "agent $n exited during the measurement"
        RSS_SUM[$n]=$((RSS_SUM[$n] + r))
        if [ "$r" -gt "${RSS_MAX[$n]}" ]; then RSS_MAX[$n]=$r; fi
    done
    samples=$((samples + 1))
done
for n in "${NAMES[@]}"; do
    read -r "U1[$n]" "S1[$n]" <<<"$(cpu_ticks "${PID_OF[$n]}")" || die "agent $n exited during the measurement"
done
W1="$(now_ns)"
for n in "${NAMES[@]}"; do
    C1[$n]="$(collections "${PORT_OF[$n]}")" || die "$n: no /metrics"
done
HZ="$(getconf CLK_TCK)"

# --- what the agents reported (outside the window) -----------------------------
pods_json="$(curl -fsS "http://127.0.0.1:$HTTP_PORT/api/v1/pods?node=bench-pods")" || die "GET /api/v1/pods failed"
REPORTED_PODS="$(jq '.count' <<<"$pods_json")"
WITH_ALL="$(jq --argjson c "$CONTAINERS" '[.pods[] | select((.containers | length) == $c)] | length' <<<"$pods_json")"
REPORTED_CONTAINERS="$(jq '[.pods[].containers | length] | add // 0' <<<"$pods_json")"
BUSY_SEEN="$(jq '[.pods[].containers[] | select((.cpu_millicores // 0) > 20)] | length' <<<"$pods_json")"
BUSY_MC="$(jq '[.pods[].containers[] | select((.cpu_millicores // 0) > 20) | .cpu_millicores] | add // 0 | . * 10 | round / 10' <<<"$pods_json")"
BASE_PODS="$(curl -fsS "http://127.0.0.1:$HTTP_PORT/api/v1/pods?node=bench-baseline" | jq '.count')"
DURATIONS=""
SIZES=""
for _ in 1 2 3 4 5; do
    d="$(metric "$PODS_PORT" aistor_agent_collect_duration_seconds)"
    b="$(metric "$BASE_PORT" aistor_agent_collect_duration_seconds)"
    DURATIONS="$DURATIONS $(awk -v d="$d" -v b="$b" 'BEGIN { printf "%.1f/%.1f", d * 1000, b * 1000 }')"
    # The latest report's size as sent on the stream and in full (agents before these
    # gauges: "-").
    sent="$(metric "$PODS_PORT" aistor_agent_report_bytes)"
    full="$(metric "$PODS_PORT" aistor_agent_report_full_bytes)"
    SIZES="$SIZES $(awk -v s="$sent" -v f="$full" 'BEGIN { if (f > 0) printf "%.1f/%.1f", s / 1024, f / 1024; else printf "-" }')"
    sleep 1
done

STRACE_LINE="strace phase skipped"
if [ "${STRACE:-1}" = 1 ] && command -v strace >/dev/null; then
    # Every syscall for 10 s; cgroup reads are counted by their pids.current opens (one
    # per cgroup read on v1 and v2), so partial ticks at either end do not skew the ratio.
    timeout -s INT 10 strace -f -qq -o "$TMP/strace.log" -p "$PODS_PID" 2>/dev/null || true
    STRACE_LINE="$(awk '
        /resumed>/ { next }
        { if (match($0, /^[0-9]+ +[a-z_0-9]+\(/)) { sc = substr($0, RSTART, RLENGTH - 1); sub(/^[0-9]+ +/, "", sc); n[sc]++; all++ } }
        /openat\(.*\/pids\.current"/ { reads++ }
        /openat\(.*\/kubepods\// { files++ }
        /(statx|newfstatat)\(AT_FDCWD, "[^"]*\/kubepods\// { dirs++ }
        END {
            if (!reads) { print "strace: no cgroup reads seen"; exit }
            printf "strace -f, 10 s (pods agent): %d cgroup reads; per cgroup read: %.1f syscalls in all, %.1f files opened, %.1f path stats, %.1f read, %.1f statx/fstat, %.1f close",
                reads, all / reads, files / reads, dirs / reads, n["read"] / reads, (n["statx"] + n["newfstatat"] + n["fstat"]) / reads, n["close"] / reads
        }' "$TMP/strace.log")"
fi

PERF_LINES=""
if [ "${PERF:-0}" != 0 ] && command -v perf >/dev/null; then
    # cpu-clock (VMs often lack hardware counters); -p samples only while the agent runs.
    perf record -q -e cpu-clock -F "${PERF_HZ:-2999}" --call-graph dwarf,16384 -p "$PODS_PID" \
        -o "$TMP/perf.data" -- sleep "$PERF" >/dev/null 2>&1 || true
    set +o pipefail # head may close a pipe early
    if [ -s "$TMP/perf.data" ]; then
        perf report -i "$TMP/perf.data" --stdio --header-only >"$TMP/perf.header" 2>/dev/null || true
        perf report -i "$TMP/perf.data" --stdio --no-children --sort dso,symbol -g none \
            --percent-limit 0.7 >"$TMP/perf.self" 2>/dev/null || true
        perf report -i "$TMP/perf.data" --stdio --children --sort symbol -g none \
            --percent-limit 3 >"$TMP/perf.children" 2>/dev/null || true
        samples_line="$(awk '/^# (Samples|Total Lost|sample)/' "$TMP/perf.header" | head -2 | tr '\n' ' ')"
        PERF_LINES="perf record -p (pods agent) ${PERF} s at ${PERF_HZ:-2999} Hz, cpu-clock ${samples_line}
top symbols by self time (% of the agent's samples):
$(grep -v '^#' "$TMP/perf.self" | grep -v '^$' | head -40)
top symbols with their callees (inclusive %):
$(grep -v '^#' "$TMP/perf.children" | grep -v '^$' | head -60)"
        [ -n "${PERF_DATA_OUT:-}" ] && cp "$TMP/perf.data" "$PERF_DATA_OUT"
    else
        PERF_LINES="perf: no samples recorded"
    fi
    set -o pipefail
fi

# --- report --------------------------------------------------------------------
declare -A CPU_M CPU_S USER_S SYS_S RSS_MEAN RSS_PEAK TICKS
WALL_S="$(awk -v ns=$((W1 - W0)) 'BEGIN { printf "%.2f", ns / 1e9 }')"
for n in "${NAMES[@]}"; do
    USER_S[$n]="$(awk -v d=$((U1[$n] - U0[$n])) -v hz="$HZ" 'BEGIN { printf "%.2f", d / hz }')"
    SYS_S[$n]="$(awk -v d=$((S1[$n] - S0[$n])) -v hz="$HZ" 'BEGIN { printf "%.2f", d / hz }')"
    CPU_S[$n]="$(awk -v u="${USER_S[$n]}" -v s="${SYS_S[$n]}" 'BEGIN { printf "%.2f", u + s }')"
    CPU_M[$n]="$(awk -v s="${CPU_S[$n]}" -v w="$WALL_S" 'BEGIN { printf "%.1f", s / w * 1000 }')"
    RSS_MEAN[$n]="$(awk -v s="${RSS_SUM[$n]}" -v k="$samples" 'BEGIN { printf "%.1f", s / k / 1024 }')"
    RSS_PEAK[$n]="$(awk -v s="${RSS_MAX[$n]}" 'BEGIN { printf "%.1f", s / 1024 }')"
    TICKS[$n]=$((C1[$n] - C0[$n]))
done
per_container() { # CPU_SECONDS TICKS -> µs per container sample
    awk -v s="$1" -v t="$2" -v c="$TOTAL_CONTAINERS" 'BEGIN { if (t > 0) printf "%.2f", s * 1e6 / (t * c); else print "n/a" }'
}
US_TOTAL="$(per_container "${CPU_S[pods]}" "${TICKS[pods]}")"
DIFF_S="$(awk -v a="${CPU_S[pods]}" -v b="${CPU_S[baseline]}" -v ta="${TICKS[pods]}" -v tb="${TICKS[baseline]}" \
    'BEGIN { printf "%.3f", a - b * ta / tb }')"
US_DIFF="$(per_container "$DIFF_S" "${TICKS[pods]}")"

echo "aistor agent overhead at pod scale: $PODS pods x $CONTAINERS containers ($TOTAL_CONTAINERS container cgroups, $BUSY busy at $BUSY_DUTY core)"
echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)  host $(nproc) vCPU, kernel $(uname -r), cgroup $MODE  window ${WALL_S}s after ${WARMUP}s warm-up  CLK_TCK $HZ  loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "binaries: $AGENT_BIN, $COORD_BIN"
echo "agents: run --interval $INTERVAL --containerd-socket /nonexistent (pods from the kubepods cgroup layout), streaming to a local coordinator"
echo
ROW='%-34s %6s %15s %11s %10s %10s %13s %12s\n'
# shellcheck disable=SC2059
printf "$ROW" agent ticks cpu_millicores cpu_seconds user_s system_s rss_mean_mib rss_max_mib
for n in "${NAMES[@]}"; do
    label="baseline (node only)"
    [ "$n" = pods ] && label="pods ($PODS pods, $TOTAL_CONTAINERS containers)"
    # shellcheck disable=SC2059
    printf "$ROW" "$label" "${TICKS[$n]}" "${CPU_M[$n]}" "${CPU_S[$n]}" "${USER_S[$n]}" "${SYS_S[$n]}" "${RSS_MEAN[$n]}" "${RSS_PEAK[$n]}"
done
echo "cgroup reads per tick (pods agent): $((PODS + TOTAL_CONTAINERS)) ($PODS pod + $TOTAL_CONTAINERS container cgroups), each read across the agent's hierarchies"
echo "cpu per container sample: ${US_TOTAL} µs all-in (agent cpu / (ticks x $TOTAL_CONTAINERS)); ${US_DIFF} µs over the baseline ((pods - baseline cpu, baseline scaled to the same ticks) / (ticks x $TOTAL_CONTAINERS))"
echo "collect duration ms, pods/baseline agent (5 scrapes after the window):$DURATIONS"
echo "report size KiB, on the stream/in full (pods agent's aistor_agent_report_bytes and _full_bytes, same 5 scrapes):$SIZES"
echo "$STRACE_LINE"
[ -n "$PERF_LINES" ] && echo "$PERF_LINES"
echo "coordinator (GET /api/v1/pods): node bench-pods $REPORTED_PODS pods, $WITH_ALL with $CONTAINERS containers, $REPORTED_CONTAINERS containers; $BUSY_SEEN busy containers at ${BUSY_MC} mc in all; node bench-baseline $BASE_PODS pods"
echo

verdict() { if awk -v v="$1" -v t="$2" 'BEGIN { exit !(v != "n/a" && v <= t) }'; then echo PASS; else echo MISS; fi; }
if [ "$REPORTED_PODS" = "$PODS" ] && [ "$WITH_ALL" = "$PODS" ] && [ "$BASE_PODS" = 0 ]; then
    echo "check  $PODS pods x $CONTAINERS containers reported, baseline 0 pods: PASS"
else
    echo "check  $PODS pods x $CONTAINERS containers reported, baseline 0 pods: MISS  ($REPORTED_PODS pods, $WITH_ALL complete, baseline $BASE_PODS)"
fi
echo "target cpu <= 10 millicores (pods agent):               $(verdict "${CPU_M[pods]}" 10)  (${CPU_M[pods]} mc)"
echo "target rss <= 30 MiB (pods agent, max):                 $(verdict "${RSS_PEAK[pods]}" 30)  (${RSS_PEAK[pods]} MiB)"
echo "target cpu <= 15 µs per container sample (over baseline): $(verdict "$US_DIFF" 15)  (${US_DIFF} µs; all-in ${US_TOTAL} µs)"
echo "note: the host has $(nproc) vCPU shared with whatever else runs (see loadavg); both agents ran in the same window."
