# Helpers shared by the benchmark scripts (sourced). They expect the caller to define
# `die MESSAGE` and `$TMP` (where each process's log is).
# shellcheck shell=bash

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
TAKEN=" "
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        case "$TAKEN" in *" $p "*) continue ;; esac
        if ! port_in_use "$p"; then
            TAKEN="$TAKEN$p "
            echo "$p"
            return
        fi
    done
}
wait_http() { # URL PID NAME
    local i
    for i in $(seq 1 100); do
        kill -0 "$2" 2>/dev/null || die "$3 exited during start-up (log: $TMP/$3.log)"
        if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
        : "$i"
    done
    die "$3 did not answer $1 within 10 s (log: $TMP/$3.log)"
}
