#!/usr/bin/env bash
# Precision of `aistor-agent measure` against each burner's own CPU clock.
#
#   hack/bench/precision.sh [SAMPLES]     (default 30; needs root)
#
# Burners at 0.1, 0.25, 0.5 and 1.0 core, one after the other, each in a fresh cgroup in
# every hierarchy the agent reads. For each: `aistor-agent measure --cgroup <path>
# --samples SAMPLES --interval 1s --trim 0.1 --json`, then the same with --samples 20 (the
# release binary, its real code path). Every agent sample is compared with the burner's
# CPU time (CLOCK_PROCESS_CPUTIME_ID, logged by the burner with CLOCK_REALTIME at the start
# and end of every 10 ms busy phase, interpolated at the sample's wall_time_unix_nanos and
# wall_time_unix_nanos - elapsed_nanos); the summary's trimmed mean with the burner's CPU
# time over the whole run. The work is agent/examples/precision.rs; this script builds it,
# prints the header and removes whatever an interrupted run left behind.
# Prints tables and PASS/MISS lines; exits non-zero only when something failed to run.
#
# Environment: DUTIES (default 0.1,0.25,0.5,1.0), SHORT_SAMPLES (20), BURNER_NICE (run the
# burners under `nice -n N`, e.g. -10: a steadier workload on a busy host), AGENT_BIN and
# EXAMPLES_DIR use other builds (default: $CARGO_TARGET_DIR or target/, release).
set -euo pipefail

SAMPLES="${1:-30}"
SHORT_SAMPLES="${SHORT_SAMPLES:-20}"
DUTIES="${DUTIES:-0.1,0.25,0.5,1.0}"
case "$SAMPLES$SHORT_SAMPLES" in '' | *[!0-9]*)
    echo "usage: $0 [SAMPLES]" >&2
    exit 2
    ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
AGENT_BIN="${AGENT_BIN:-$TARGET/release/aistor-agent}"
EXAMPLES_DIR="${EXAMPLES_DIR:-$TARGET/release/examples}"
RUN_PID=""

# The program removes its cgroups itself; this covers a Ctrl-C or a crash: its burners
# stop when their stdin closes (and are killed here if not), then the directories go.
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local dir pid
    if [ -n "$RUN_PID" ]; then
        kill "$RUN_PID" 2>/dev/null || true
        wait "$RUN_PID" 2>/dev/null || true
    fi
    for dir in /sys/fs/cgroup/*/aistor-precision-* /sys/fs/cgroup/aistor-precision-*; do
        [ -d "$dir" ] || continue
        while read -r pid; do
            if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
        done <"$dir/cgroup.procs"
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            rmdir "$dir" 2>/dev/null && break
            sleep 0.1
        done
        [ -d "$dir" ] && echo "precision: could not remove $dir" >&2
    done
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "precision: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (it creates cgroups)"
if [ ! -x "$AGENT_BIN" ] || [ ! -x "$EXAMPLES_DIR/precision" ] || [ ! -x "$EXAMPLES_DIR/burner" ]; then
    echo "building release binaries" >&2
    cargo build --release -p aistor-agent --bins --example precision --example burner >&2 ||
        die "cargo build failed"
fi

MODE="v2 (cpu.stat usage_usec)"
if grep -q ' - cgroup ' /proc/1/mountinfo; then
    MODE="v1/hybrid (cpuacct.usage)"
fi
echo "aistor agent measurement precision vs the burner's own CPU clock"
echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)  host $(nproc) vCPU, kernel $(uname -r), cgroup $MODE  loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
NICE_ARGS=()
NICE_NOTE="default priority"
if [ -n "${BURNER_NICE:-}" ]; then
    NICE_ARGS=(--burner-nice "$BURNER_NICE")
    NICE_NOTE="nice $BURNER_NICE"
fi
echo "binary: $AGENT_BIN  (measure --interval 1s --trim 0.1 --json); burners one at a time at $DUTIES core, 10 ms period, $NICE_NOTE"
echo "truth: burner CLOCK_PROCESS_CPUTIME_ID logged with CLOCK_REALTIME at every busy start/end, interpolated at each sample's [wall_time_unix_nanos - elapsed_nanos, wall_time_unix_nanos]"
echo

"$EXAMPLES_DIR/precision" --agent "$AGENT_BIN" --burner "$EXAMPLES_DIR/burner" \
    --samples "$SAMPLES" --short-samples "$SHORT_SAMPLES" --duties "$DUTIES" "${NICE_ARGS[@]}" &
RUN_PID=$!
status=0
wait "$RUN_PID" || status=$?
RUN_PID=""
echo "note: the host has $(nproc) vCPU shared with whatever else runs (loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg))."
exit "$status"
