#!/usr/bin/env bash
# Seed 003's migration benchmark, reproduced on this machine with the local runtime:
# "Kubernetes native" (delete the pod and apply it again) against aistor's migration API
# (POST /api/v1/migrations), with the timings of the seed's script (keti.md §6.1), every
# figure measured. Prints figures; asserts nothing.
#
#   hack/bench/migration.sh [RUNS=3]
#   options (environment): SETTLE=45 (the seed's sleeps, s)  SAMPLES=20  INTERVAL=1s  TRIM=0.1
#                          WARMUP_SECONDS=30 (the trainer's cold-start warm-up)  KEEP_TMP=1
#
# Needs root (the local runtime runs containers). Starts aistor as hack/up.sh does (it runs
# hack/up.sh in the background on free ports, with its data, state and run directories in
# a temporary directory, and a private containerd), and stops it, its pods included, on
# exit. Details: hack/bench/README.md, "Migration (seed 003)".
set -euo pipefail
cd "$(dirname "$0")/../.."
source hack/lib.sh
source hack/bench/lib.sh

RUNS="${1:-${RUNS:-3}}"
SETTLE="${SETTLE:-45}"
SAMPLES="${SAMPLES:-20}"
INTERVAL="${INTERVAL:-1s}"
TRIM="${TRIM:-0.1}"
WARMUP_SECONDS="${WARMUP_SECONDS:-30}"
READY_TIMEOUT=300     # the seed's wait for Ready
MIGRATION_POLL=3      # the seed polls the migration every 3 s ...
MIGRATION_WAIT=330    # ... up to 330 s
MIGRATION_TIMEOUT=300 # the request's "timeout" (s), as the seed
MANIFEST=deploy/examples/seed-003-benchmark-pod.yaml
POD=tensorflow-ai-workload

die() { echo "error: $*" >&2; exit 1; }
case "$RUNS" in '' | *[!0-9]* | 0) die "RUNS must be a positive integer (got '$RUNS')" ;; esac
[ "$(id -u)" -eq 0 ] || die "the local runtime runs containers and needs root"

TMP="$(mktemp -d /var/tmp/aistor-bench-migration.XXXXXX)"
up_pid=""
namespaces=()
poller_pid=""
failed_runs=0
RUN_NS=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$poller_pid" ]; then kill "$poller_pid" 2>/dev/null || true; wait "$poller_pid" 2>/dev/null || true; fi
    if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
        local ns name
        for ns in "${namespaces[@]}"; do
            for name in $(pod_names "$ns"); do
                ctl delete pod "$name" -n "$ns" >/dev/null 2>&1 || true
                wait_gone "$ns" "$name" 60 >/dev/null 2>&1 || true
            done
        done
        log "stopping aistor (hack/up.sh stops the agent, the coordinator, the pods and containerd)"
        kill -TERM "$up_pid" 2>/dev/null || true
        wait "$up_pid" 2>/dev/null || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools, binaries, aistor -------------------------------------------------------------
apt_install curl jq gawk containerd runc protobuf-compiler
[ -x /usr/bin/python3 ] || apt_install python3
require_cargo
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
log "building release binaries ($CARGO_TARGET_DIR/release)"
cargo build --release --locked --bins
BIN="$CARGO_TARGET_DIR/release"

NODE="$(cat /proc/sys/kernel/hostname)"
GRPC="127.0.0.1:$(free_port)"
HTTP="127.0.0.1:$(free_port)"
ADMIN="127.0.0.1:$(free_port)"
REST="http://$HTTP"
log "starting aistor with hack/up.sh (gRPC $GRPC, REST $HTTP, node $NODE, directories under $TMP)"
AISTOR_GRPC_ADDR="$GRPC" AISTOR_HTTP_ADDR="$HTTP" \
    AISTOR_AGENT_ADDR="127.0.0.1:$(free_port)" AISTOR_ADMIN_ADDR="$ADMIN" \
    AISTOR_NODE_NAME="$NODE" AISTOR_INTERVAL=1s \
    AISTOR_DATA_DIR="$TMP/coordinator" AISTOR_STATE_DIR="$TMP/state" AISTOR_RUN_DIR="$TMP/run" \
    AISTOR_CONTAINERD_SOCKET="$TMP/no-node-containerd.sock" AISTOR_LOCAL_RUNTIME=1 \
    hack/up.sh >"$TMP/up.log" 2>&1 &
up_pid=$!

ctl() { "$BIN/aistorctl" --server "http://$GRPC" "$@"; }
now() { date +%s.%N; }
# fsub A B: A - B, for unix times with fractions.
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
clock() { date -d "@${1%.*}" +%H:%M:%S; }

for _ in $(seq 1 600); do
    kill -0 "$up_pid" 2>/dev/null || { tail -n 30 "$TMP/up.log" >&2; die "hack/up.sh exited (its log: above)"; }
    grep -q 'aistor is running' "$TMP/up.log" && break
    sleep 1
done
grep -q 'aistor is running' "$TMP/up.log" || die "aistor did not start within 600 s (see $TMP/up.log)"

# --- helpers -------------------------------------------------------------------------------
pods_json() { ctl get pods -n "$1" -o json 2>/dev/null || echo '{"items":[]}'; }
pod_names() { pods_json "$1" | jq -r '.items[].metadata.name'; }
pod_ready() { # NS POD: exit 0 when the pod's Ready condition is True
    pods_json "$1" | jq -e --arg n "$2" '.items[] | select(.metadata.name == $n)
        | .status.conditions // [] | any(.type == "Ready" and .status == "True")' >/dev/null
}
wait_ready() { # NS POD TIMEOUT: prints the time it was seen Ready
    local deadline=$(($(date +%s) + $3))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if pod_ready "$1" "$2"; then now; return 0; fi
        sleep 0.2
    done
    return 1
}
wait_gone() { # NS POD TIMEOUT: gone from the coordinator's pods and from the node's report
    local deadline=$(($(date +%s) + $3))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if ! pods_json "$1" | jq -e --arg n "$2" 'any(.items[]; .metadata.name == $n)' >/dev/null &&
            [ "$(curl -s -o /dev/null -w '%{http_code}' "$REST/api/v1/pods/$1/$2")" = 404 ]; then
            now
            return 0
        fi
        sleep 0.2
    done
    return 1
}
render() { # NS PROGRESS_DIR: the manifest for this run, pinned to this node as the seed pins it
    sed -e "s|^  namespace: ai-test\$|  namespace: $1|" \
        -e "s|/var/tmp/aistor-seed-003-progress|$2|" \
        -e "s|^  restartPolicy: Never\$|  nodeName: $NODE\n  restartPolicy: Never|" \
        -e "/name: WARMUP_SECONDS/s|value: \"[0-9.]*\"|value: \"$WARMUP_SECONDS\"|" \
        "$MANIFEST"
}
http() { # METHOD URL [JSON]: prints the body, then the status code on its own line
    if [ $# -ge 3 ]; then
        curl -sS -X "$1" -H 'content-type: application/json' -d "$3" -w '\n%{http_code}' "$2" || printf '\n000'
    else
        curl -sS -X "$1" -w '\n%{http_code}' "$2" || printf '\n000'
    fi
}
err_text() { jq -r '[.error, .details] | map(select(. != null and . != "")) | join(": ")' 2>/dev/null <<<"$1" || echo "$1"; }

# measure NS POD LABEL: a measurement run through the REST API. Sets M_CPU (millicores) and
# M_MEM (bytes), trimmed means of the pod's cgroup, or M_WHY; M_INFO describes the run.
measure() {
    M_CPU="" M_MEM="" M_WHY="" M_INFO=""
    local out body code id state req
    req="$(jq -nc --arg ns "$1" --arg pod "$2" --argjson s "$SAMPLES" --arg i "$INTERVAL" --argjson t "$TRIM" \
        '{pod_namespace: $ns, pod_name: $pod, samples: $s, interval: $i, trim: $t}')"
    out="$(http POST "$REST/api/v1/measurements" "$req")"
    code="${out##*$'\n'}" body="${out%$'\n'*}"
    if [ "$code" != 202 ]; then
        M_WHY="POST /api/v1/measurements answered $code: $(err_text "$body")"
        return
    fi
    id="$(jq -r .measurement_id <<<"$body")"
    local deadline=$(($(date +%s) + SAMPLES * 10 + 120))
    while :; do
        sleep 2
        out="$(http GET "$REST/api/v1/measurements/$id")"
        code="${out##*$'\n'}" body="${out%$'\n'*}"
        [ "$code" = 200 ] && state="$(jq -r '.state' <<<"$body")" || state="HTTP $code"
        case "$state" in running) ;; *) break ;; esac
        if [ "$(date +%s)" -ge "$deadline" ]; then M_WHY="measurement $id still running after $((SAMPLES * 10 + 120)) s"; return; fi
    done
    printf '%s\n' "$body" >"$TMP/$3.measurement.json"
    case "$state" in
    succeeded) ;;
    *) M_WHY="measurement $id: $state $(jq -r '[.error, .result.error] | map(select(. != null and . != "")) | join("; ")' <<<"$body" 2>/dev/null)"; return ;;
    esac
    local pod_target
    pod_target="$(jq -c '[.result.targets[] | select(.kind == "pod")][0] // empty' <<<"$body")"
    if [ -z "$pod_target" ]; then M_WHY="measurement $id has no pod target"; return; fi
    M_CPU="$(jq -r '.summary.cpu_millicores.trimmed_mean // empty' <<<"$pod_target")"
    M_MEM="$(jq -r '.summary.memory_working_set_bytes.trimmed_mean // empty' <<<"$pod_target")"
    [ -n "$M_CPU" ] || M_WHY="measurement $id: no CPU sample ($(jq -r '[.failures[]?.reason] | unique | join("; ")' <<<"$pod_target"))"
    [ -n "$M_MEM" ] || M_WHY="${M_WHY:-measurement $id: no memory sample}"
    M_INFO="$(jq -r --arg id "$id" '"\($id): \(.samples_taken) samples taken, \(.samples_failed) failed; by container (trimmed mean, millicores): " +
        ([.containers[]? | "\(.name) \(.summary.cpu_millicores.trimmed_mean // "n/a" | if type == "number" then (. * 10 | round / 10 | tostring) else . end)"] | join(", "))' <<<"$pod_target")"
}
show_measure() { # LABEL
    if [ -n "$M_WHY" ]; then
        printf '    %-7s n/a (%s)\n' "$1:" "$M_WHY"
    else
        printf '    %-7s CPU %.1f m, memory %.1f MiB   [%s]\n' "$1:" "$M_CPU" "$(awk -v b="$M_MEM" 'BEGIN { print b / 1048576 }')" "$M_INFO"
    fi
}
# A figure for the table: the number, or "n/a (why)".
fig_cpu() { if [ -n "$M_WHY" ]; then echo "n/a ($M_WHY)"; else printf '%.1f' "$M_CPU"; fi; }
fig_mem() { if [ -n "$M_WHY" ]; then echo "n/a ($M_WHY)"; else awk -v b="$M_MEM" 'BEGIN { printf "%.1f", b / 1048576 }'; fi; }

# The trainer's progress lines: "<unix time> <pod> <step>".
step_before() { # FILE T: the last step written before T
    awk -v t="$2" '$1 < t { s = $3 } END { if (s != "") print s }' "$1"
}
# progress FILE OLD_POD OLD_BEFORE NEW_POD NEW_AFTER NEW_BEFORE T_MOVE prints
#   "<step at T_MOVE> <old pod's last line: time> <its step> <new pod's first step>
#    <time the new pod reached the step at T_MOVE> <time it reached the old pod's last step>"
# ("-" for what is not there): the old pod's lines are OLD_POD's before OLD_BEFORE, the new
# pod's NEW_POD's in (NEW_AFTER, NEW_BEFORE).
progress() {
    awk -v op="$2" -v ob="$3" -v np="$4" -v na="$5" -v nb="$6" -v tm="$7" '
        BEGIN { pre = "-"; tl = "-"; sl = "-"; first = "-"; ta = "-"; tb = "-" }
        $1 < tm { pre = $3 }
        $2 == op && $1 < ob { tl = $1; sl = $3 }
        $2 == np && $1 > na && $1 < nb {
            if (first == "-") first = $3
            if (ta == "-" && pre != "-" && $3 + 0 >= pre + 0) ta = $1
            if (tb == "-" && sl != "-" && $3 + 0 >= sl + 0) tb = $1
        }
        END { print pre, tl, sl, first, ta, tb }' "$1"
}
# catch_up TEST "PROGRESS" T_MOVE WHAT_MOVED WHO [WHEN]: prints and sets C_BACK (s from T_MOVE
# until the new trainer passed the step it had then), C_GAP (s from the old trainer's last step
# until the new one passed it) and C_CPUS (CPU-s the pods used in that gap), or "n/a (why)".
catch_up() {
    local pre tl sl first ta tb cpus
    read -r pre tl sl first ta tb <<<"$2"
    C_BACK="" C_GAP="" C_CPUS=""
    if [ "$pre" = - ]; then
        C_BACK="n/a (no progress line before $4)"
    elif [ "$ta" = - ]; then
        C_BACK="n/a ($5 had not reached step $pre ${6:-within 300 s})"
    else
        C_BACK="$(fsub "$ta" "$3")"
    fi
    if [ "$sl" = - ]; then
        C_GAP="n/a (no progress line of the old trainer)"
    elif [ "$tb" = - ]; then
        C_GAP="n/a ($5 had not reached step $sl ${6:-within 300 s})"
    else
        C_GAP="$(fsub "$tb" "$tl")"
        cpus="$(cpu_seconds "$cpu_file" "$tl" "$tb")"
        C_CPUS="${cpus%% *}"
    fi
    C_CPUS="${C_CPUS:-$C_GAP}"
    echo "  $1: step $pre at $4; the old trainer's last step $sl at $(clock "${tl/-/0}"); $5's first step: $first;"
    echo "    back at step $pre ${C_BACK%% (*} s after $4; back at step $sl ${C_GAP%% (*} s after the old trainer's last step;"
    echo "    CPU-s the pods used in between: ${cpus:-n/a}"
}

# The pods' cumulative CPU: the agent's cgroup counters (container_cpu_usage_seconds_total on
# its /metrics, the pod's cgroup and each container's), read every second into FILE as
# "<unix time> <pod> <pod uid> <container, - for the pod> <CPU seconds>".
poll_cpu() { # NS FILE
    local t
    while :; do
        t="$(now)"
        curl -fsS "http://$ADMIN/metrics" 2>/dev/null | awk -v t="$t" -v ns="$1" '
            /^container_cpu_usage_seconds_total[{]/ && index($0, "namespace=\"" ns "\"") {
                c = $0; sub(/.*container="/, "", c); sub(/".*/, "", c)
                p = $0; sub(/.*pod="/, "", p); sub(/".*/, "", p)
                u = $0; sub(/.*[/]pod/, "", u); sub(/[/"].*/, "", u)
                print t, p, u, (c == "" ? "-" : c), $NF }' >>"$2" || true
        sleep 1
    done
}
# cpu_seconds FILE FROM TO: CPU-seconds the namespace's pods used between FROM and TO (each
# counter's last reading at or before TO minus its last at or before FROM, 0 for a pod that
# did not exist yet), then the same by container.
cpu_seconds() {
    awk -v a="$2" -v b="$3" '
        { k = $3 SUBSEP $4; if ($1 <= a) start[k] = $5; if ($1 <= b) { end[k] = $5; name[k] = $4 } }
        END {
            for (k in end) { d = end[k] - (k in start ? start[k] : 0); if (name[k] == "-") total += d; else by[name[k]] += d }
            printf "%.1f", total
            sep = " ("; for (c in by) { printf "%s%s %.1f", sep, c, by[c]; sep = ", " } if (sep == ", ") printf ")"
            printf "\n" }' "$1"
}

# --- results -------------------------------------------------------------------------------
RESULTS="$TMP/results.tsv" # run \t row \t k8s \t aistor
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }
# The seed's table (CPU and memory 45 s after the move, time), what the move cost, then context
# (no improvement printed for those: they are the same pod before either move).
ROWS=(
    "CPU after (millicores)"
    "memory after (MiB)"
    "time: downtime (s)"
    "back at the pre-move step (s)"
    "training interrupted (s)"
    "CPU-s while interrupted"
    "move: request to done (s)"
    "CPU before (millicores)"
    "memory before (MiB)"
)
context_row() { case "$1" in *before*) return 0 ;; *) return 1 ;; esac; }
improvement() { # K8S AISTOR
    awk -v k="$1" -v a="$2" 'BEGIN {
        if (k !~ /^-?[0-9.]+$/ || a !~ /^-?[0-9.]+$/) { print "n/a"; exit }
        if (k + 0 == 0) { print "n/a (K8s figure 0)"; exit }
        printf "%.1f %%", (k - a) / k * 100 }'
}
print_table() { # RUN
    local row k a i
    printf '  %-32s %14s %14s %12s\n' "seed 003's table, run $1" "K8s native" "aistor" "improvement"
    for row in "${ROWS[@]}"; do
        k="$(awk -F'\t' -v r="$1" -v w="$row" '$1 == r && $2 == w { print $3 }' "$RESULTS")"
        a="$(awk -F'\t' -v r="$1" -v w="$row" '$1 == r && $2 == w { print $4 }' "$RESULTS")"
        if context_row "$row"; then i=""; else i="$(improvement "$k" "$a")"; fi
        printf '  %-32s %14s %14s %12s\n' "$row" "${k%% (*}" "${a%% (*}" "$i"
    done
    # Why figures are absent: each reason once, with the rows it applies to.
    awk -F'\t' -v r="$1" '
        function note(col, v) { if (v !~ /^n\/a \(/) return; k = col ": " v; if (!(k in rows)) order[++n] = k; rows[k] = rows[k] (rows[k] == "" ? "" : ", ") $2 }
        $1 == r { note("K8s native", $3); note("aistor", $4) }
        END { for (i = 1; i <= n; i++) print "    " order[i] "  [" rows[order[i]] "]" }' "$RESULTS"
}

# --- one run -------------------------------------------------------------------------------
run_once() { # RUN
    local r="$1" progress cpu_file t0 t_ready t_delete t_gone t_apply t1_ready t_move t_done
    ns="ai-test-$(date +%s)"
    namespaces+=("$ns")
    RUN_NS="$ns"
    progress="$TMP/run$r/progress"
    mkdir -p "$progress" "$TMP/run$r"
    cpu_file="$TMP/run$r/cpu.txt"
    : >"$cpu_file"
    render "$ns" "$progress" >"$TMP/run$r/pod.yaml"
    local log_file="$progress/progress.log"

    echo
    echo "run $r/$RUNS: namespace $ns, node $NODE, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
    poll_cpu "$ns" "$cpu_file" &
    poller_pid=$!

    # Deploy, wait Ready, settle.
    t0="$(now)"
    ctl apply -f "$TMP/run$r/pod.yaml" >/dev/null || { echo "  FAILED: aistorctl apply"; return 1; }
    t_ready="$(wait_ready "$ns" "$POD" "$READY_TIMEOUT")" || { echo "  FAILED: $POD not Ready within ${READY_TIMEOUT}s"; return 1; }
    echo "  deployed at $(clock "$t0"), Ready after $(fsub "$t_ready" "$t0") s (the trainer's warm-up, then its first step); sleep ${SETTLE}s"
    sleep "$SETTLE"

    # Test 1: Kubernetes native, delete and apply again.
    echo "  test 1, Kubernetes native: delete the pod, apply it again (same node)"
    measure "$ns" "$POD" "run$r-k8s-before"
    show_measure before
    local k8s_b_cpu k8s_b_mem
    k8s_b_cpu="$(fig_cpu)" k8s_b_mem="$(fig_mem)"
    t_delete="$(now)"
    local pre1
    pre1="$(step_before "$log_file" "$t_delete")"
    ctl delete pod "$POD" -n "$ns" >/dev/null || { echo "  FAILED: aistorctl delete pod"; return 1; }
    t_gone="$(wait_gone "$ns" "$POD" 120)" || { echo "  FAILED: $POD not gone 120 s after its delete"; return 1; }
    t_apply="$(now)"
    ctl apply -f "$TMP/run$r/pod.yaml" >/dev/null || { echo "  FAILED: aistorctl apply (again)"; return 1; }
    t1_ready="$(wait_ready "$ns" "$POD" "$READY_TIMEOUT")" || { echo "  FAILED: the re-created $POD not Ready within ${READY_TIMEOUT}s"; return 1; }
    echo "    the re-created trainer's log: $(ctl logs "$POD" -n "$ns" -c tensorflow-trainer 2>&1 | head -n 1)"
    echo "    deleted at step ${pre1:-?}; gone after $(fsub "$t_gone" "$t_delete") s; applied again; Ready $(fsub "$t1_ready" "$t_apply") s later: downtime $(fsub "$t1_ready" "$t_delete") s (delete -> Ready)"
    local k8s_down
    k8s_down="$(fsub "$t1_ready" "$t_delete")"
    sleep "$SETTLE"
    measure "$ns" "$POD" "run$r-k8s-after"
    show_measure after
    local k8s_cpu k8s_mem
    k8s_cpu="$(fig_cpu)" k8s_mem="$(fig_mem)"

    # Test 2: aistor's migration API, back to the same node.
    echo "  test 2, aistor: POST /api/v1/migrations (to the same node, preserve_pv, timeout ${MIGRATION_TIMEOUT}s)"
    sleep "$SETTLE"
    measure "$ns" "$POD" "run$r-aistor-before"
    show_measure before
    local b_cpu b_mem
    b_cpu="$(fig_cpu)" b_mem="$(fig_mem)"
    local req out code body id status details new_pod="" why="" pre2
    req="$(jq -nc --arg p "$POD" --arg ns "$ns" --arg n "$NODE" --argjson t "$MIGRATION_TIMEOUT" \
        '{pod_name: $p, pod_namespace: $ns, source_node: $n, target_node: $n, preserve_pv: true, timeout: $t}')"
    t_move="$(now)"
    pre2="$(step_before "$log_file" "$t_move")"
    out="$(http POST "$REST/api/v1/migrations" "$req")"
    code="${out##*$'\n'}" body="${out%$'\n'*}"
    if [ "$code" != 202 ]; then
        why="POST /api/v1/migrations answered $code: $(err_text "$body")"
    else
        id="$(jq -r .migration_id <<<"$body")"
        echo "    $id: $(jq -r '.status + ", " + .message' <<<"$body") (move started at step ${pre2:-?})"
        local deadline=$(($(date +%s) + MIGRATION_WAIT))
        status=""
        while [ "$(date +%s)" -lt "$deadline" ]; do
            sleep "$MIGRATION_POLL"
            out="$(http GET "$REST/api/v1/migrations/$id/status")"
            code="${out##*$'\n'}" body="${out%$'\n'*}"
            [ "$code" = 200 ] || { status="HTTP $code: $(err_text "$body")"; continue; }
            status="$(jq -r .status <<<"$body")"
            case "$status" in completed | failed | cancelled) break ;; esac
        done
        t_done="$(now)"
        out="$(http GET "$REST/api/v1/migrations/$id")"
        details="${out%$'\n'*}"
        printf '%s\n' "$details" >"$TMP/run$r-migration.json"
        case "$status" in
        completed)
            new_pod="$(jq -r '.details.new_pod_name // empty' <<<"$details")"
            [ -n "$new_pod" ] || why="$id completed without details.new_pod_name"
            ;;
        failed | cancelled) why="$id $status: $(jq -r '.details.error_message // .message // "no error_message"' <<<"$details")" ;;
        *) why="$id not completed within ${MIGRATION_WAIT}s (last status: ${status:-none})" ;;
        esac
    fi
    local a_cpu a_mem a_down a_move a_back a_cpus
    if [ -n "$why" ]; then
        echo "    FAILED: $why"
        a_cpu="n/a ($why)" a_mem="n/a ($why)" a_down="n/a ($why)" a_move="n/a ($why)"
    else
        a_down="$(jq -r '.details.downtime_seconds // empty | . * 100 | round / 100' <<<"$details")"
        [ -n "$a_down" ] || a_down="n/a (details.downtime_seconds is null)"
        a_move="$(fsub "$t_done" "$t_move")"
        echo "    completed (seen $(fsub "$t_done" "$t_move") s after the POST, polling every ${MIGRATION_POLL}s); new pod $new_pod; downtime ${a_down%% (*} s (details.downtime_seconds)"
        jq -r 'def ts: (sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601) + ((capture("\\.(?<f>[0-9]+)Z$") // {f: "0"}).f | "0." + . | tonumber);
            .details as $d
            | "    strategy \($d.strategy // "n/a"); containers: " + ([$d.container_states[]? | "\(.name) \(.state) -> \(.action)"] | join(", "))
            + "\n    checkpoint: " + (($d.checkpoint // {}) | if .bytes then "\(.bytes) bytes in \(.files // "?") files, staged in \(.staging_seconds // "?" | tostring) s" else "none reported (\(.error // "no checkpoint"))" end)
            + "\n    stages (API times, to the second): " + ([$d.stage_history[]? | .stage + (if .finished_at then " \((.finished_at | ts) - (.started_at | ts) | . * 10 | round / 10) s" else "" end)] | join(", "))
            + "\n    the migration'"'"'s own figures: time_to_resume \($d.time_to_resume_seconds // "n/a")"
            + " s; before " + ($d.original_resources | if . then "\(.cpu_usage * 1000 | round) m, \(.memory_usage / 1048576 | round) MiB" else "n/a (\($d.original_resources_missing // "?"))" end)
            + "; after " + ($d.optimized_resources | if . then "\(.cpu_usage * 1000 | round) m, \(.memory_usage / 1048576 | round) MiB" else "n/a (\($d.optimized_resources_missing // "?"))" end)' \
            <<<"$details" 2>/dev/null || true
        echo "    the new trainer's log: $(ctl logs "$new_pod" -n "$ns" -c tensorflow-trainer 2>&1 | head -n 1)"
        sleep "$SETTLE"
        measure "$ns" "$new_pod" "run$r-aistor-after"
        show_measure after
        a_cpu="$(fig_cpu)" a_mem="$(fig_mem)"
    fi

    # Catching up: back at the step of the move's start, and at the old trainer's last step.
    local k8s_back k8s_gap k8s_cpus a_back a_gap a_cpus
    catch_up "test 1" "$(progress "$log_file" "$POD" "$t_apply" "$POD" "$t_apply" "$t_move" "$t_delete")" \
        "$t_delete" "the delete" "the re-created trainer" "before test 2 started"
    k8s_back="$C_BACK" k8s_gap="$C_GAP" k8s_cpus="$C_CPUS"
    if [ -n "$why" ]; then
        a_back="n/a ($why)" a_gap="n/a ($why)" a_cpus="n/a ($why)"
    else
        # Wait (up to 5 minutes) until the new pod's trainer passes the source's last step.
        local wait_until=$(($(date +%s) + 300)) p
        while p="$(progress "$log_file" "$POD" 9e18 "$new_pod" "$t_move" 9e18 "$t_move")"; [ "$(cut -d' ' -f6 <<<"$p")" = - ] && [ "$(date +%s)" -lt "$wait_until" ]; do sleep 1; done
        sleep 2 # one more reading of the CPU counters past that moment
        catch_up "test 2" "$p" "$t_move" "the POST" "$new_pod's trainer"
        a_back="$C_BACK" a_gap="$C_GAP" a_cpus="$C_CPUS"
    fi
    record "$r" "CPU after (millicores)" "$k8s_cpu" "$a_cpu"
    record "$r" "memory after (MiB)" "$k8s_mem" "$a_mem"
    record "$r" "time: downtime (s)" "$k8s_down" "$a_down"
    record "$r" "CPU before (millicores)" "$k8s_b_cpu" "$b_cpu"
    record "$r" "memory before (MiB)" "$k8s_b_mem" "$b_mem"
    record "$r" "move: request to done (s)" "$k8s_down" "$a_move"
    record "$r" "back at the pre-move step (s)" "$k8s_back" "$a_back"
    record "$r" "training interrupted (s)" "$k8s_gap" "$a_gap"
    record "$r" "CPU-s while interrupted" "$k8s_cpus" "$a_cpus"

    echo
    print_table "$r"
    [ -z "$why" ]
}
end_run() { # NS: stops the poller, deletes the run's pods
    if [ -n "$poller_pid" ]; then
        kill "$poller_pid" 2>/dev/null || true
        wait "$poller_pid" 2>/dev/null || true
        poller_pid=""
    fi
    local name
    for name in $(pod_names "$1"); do
        ctl delete pod "$name" -n "$1" >/dev/null 2>&1 || true
        wait_gone "$1" "$name" 60 >/dev/null || echo "  warning: $1/$name not gone 60 s after its delete"
    done
}

echo "aistor migration benchmark: seed 003 on the local runtime, $RUNS run(s)"
echo "machine: nproc $(nproc), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r), $(stat -fc %T /sys/fs/cgroup | sed 's/cgroup2fs/cgroup v2/;s/tmpfs/cgroup v1\/hybrid/'); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "timings (the seed's script): deploy, wait Ready, sleep ${SETTLE}s; test 1: measure, delete, wait gone, apply, wait Ready, sleep ${SETTLE}s, measure;"
echo "  test 2: sleep ${SETTLE}s, measure, POST /api/v1/migrations, poll every ${MIGRATION_POLL}s, sleep ${SETTLE}s, measure the new pod"
echo "measurement: POST /api/v1/measurements {samples: $SAMPLES, interval: $INTERVAL, trim: $TRIM}, the pod cgroup's trimmed means (CPU millicores, memory working set)"
for r in $(seq 1 "$RUNS"); do
    if ! run_once "$r"; then
        failed_runs=$((failed_runs + 1))
        echo "run $r: FAILED (figures above; absent ones say why)"
    fi
    end_run "$RUN_NS"
done

# --- summary ---------------------------------------------------------------------------------
summarize() { # ROW COLUMN(3|4|improvement)
    local vals
    if [ "$2" = improvement ]; then
        vals="$(awk -F'\t' -v w="$1" '$2 == w && $3 ~ /^-?[0-9.]+$/ && $4 ~ /^-?[0-9.]+$/ && $3 + 0 != 0 { print ($3 - $4) / $3 * 100 }' "$RESULTS")"
    else
        vals="$(awk -F'\t' -v w="$1" -v c="$2" '$2 == w && $c ~ /^-?[0-9.]+$/ { print $c }' "$RESULTS")"
    fi
    if [ -z "$vals" ]; then echo "n/a (no run measured it)"; return; fi
    awk -v u="$([ "$2" = improvement ] && echo ' %')" '{ s += $1; n++; if (n == 1 || $1 < lo) lo = $1; if (n == 1 || $1 > hi) hi = $1 }
        END { printf "%.1f%s [%.1f, %.1f] n=%d", s / n, u, lo, hi, n }' <<<"$vals"
}
echo
echo "summary over $RUNS run(s): mean [min, max] n=runs with the figure"
printf '  %-32s %-30s %-30s %s\n' "" "K8s native" "aistor" "improvement"
for row in "${ROWS[@]}"; do
    if context_row "$row"; then i=""; else i="$(summarize "$row" improvement)"; fi
    printf '  %-32s %-30s %-30s %s\n' "$row" "$(summarize "$row" 3)" "$(summarize "$row" 4)" "$i"
done
target="$(awk -F'\t' '$2 == "CPU after (millicores)" && $3 ~ /^-?[0-9.]+$/ && $4 ~ /^-?[0-9.]+$/ && $3 + 0 != 0 { s += ($3 - $4) / $3 * 100; n++ }
    END { if (n) printf "%s (%.1f %%, mean of %d run(s))", (s / n >= 20 ? "PASS" : "MISS"), s / n, n; else print "n/a (no run measured it)" }' "$RESULTS")"
echo
echo "seed 003's criterion, CPU after reduced by >= 20 %: $target"
cat <<'EOF'

where the differences come from:
  - data-processor: with the seed's timings it has completed (exit 0) before each move (the
    containers line above says so). Kubernetes' delete-and-apply runs it again (another 60 s of
    CPU-bound work); aistor's plan marks it completed and leaves it out of the new pod.
  - tensorflow-trainer: re-created cold, it spends its warm-up preparing data again and retrains
    from step 0 ("training interrupted" and "CPU-s while interrupted" count this); moved by aistor,
    it writes a checkpoint on SIGUSR1, the new pod starts from it and resumes at that step.
  - "CPU/memory after" are rates 45 s after Ready, as in the seed: by then the re-run data-processor
    may already have finished (the trainer's Ready waits for its warm-up), so the seed's rate table
    can show little of the re-run; the CPU-seconds row is where it shows.
  - "back at the pre-move step" counts from the delete / the POST; aistor's migration measures the
    source for 20 s before it checkpoints (the trainer trains on meanwhile), so "training
    interrupted" (old trainer's last step -> the new one passes it) is the like-for-like figure.
    "move: request to done" includes the migration's own measurement runs and settle delay.
EOF
[ "$failed_runs" -eq 0 ] || { echo "$failed_runs of $RUNS run(s) failed"; exit 1; }
