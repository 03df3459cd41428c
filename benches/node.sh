#!/usr/bin/env bash
# Starts, stops or restarts one extra Clarion node for benches/run.sh: the second node of the
# 2-node cases. It is a script rather than a function of run.sh because clarion-bench's
# reconnect-storm restarts that node itself, in the middle of the case (--restart-cmd).
#
#   NODE_BIN=target/release/clarion NODE_CONFIG=clarion.toml NODE_PORT=7001 \
#   NODE_PIDFILE=/tmp/node2.pid NODE_LOG=/tmp/node2.log benches/node.sh start|stop|restart
#
# start: runs the node in the background in its own process group (not its own session: see
# "setsid" in benches/README.md) with RUST_LOG=warn and no CLARION_* variables, writes its PID
# to NODE_PIDFILE and returns once GET /up answers (START_TIMEOUT seconds, default 30).
# stop: SIGTERM to that process group, as a deploy does (connections get 4200), SIGKILL after
# STOP_TIMEOUT seconds (default 15); returns once the process is gone.
set -euo pipefail

: "${NODE_BIN:?}" "${NODE_CONFIG:?}" "${NODE_PORT:?}" "${NODE_PIDFILE:?}" "${NODE_LOG:?}"
START_TIMEOUT=${START_TIMEOUT:-30}
STOP_TIMEOUT=${STOP_TIMEOUT:-15}

# True while a process exists and is not a zombie (an orphan may wait a while to be reaped).
alive() {
    local state
    [[ -r /proc/$1/stat ]] || return 1
    state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $state != Z ]]
}

start() {
    local pid deadline
    set -m
    (
        for v in $(compgen -e | grep '^CLARION_' || true); do unset "$v"; done
        export RUST_LOG=warn
        exec "$NODE_BIN" --config "$NODE_CONFIG" --host 127.0.0.1 --port "$NODE_PORT"
    ) >>"$NODE_LOG" 2>&1 </dev/null &
    pid=$!
    set +m
    echo "$pid" >"$NODE_PIDFILE"
    deadline=$((SECONDS + START_TIMEOUT))
    until curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$NODE_PORT/up" 2>/dev/null; do
        if ! alive "$pid"; then
            echo "node.sh: the node exited at start (log: $NODE_LOG)" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "node.sh: the node did not answer on port $NODE_PORT within ${START_TIMEOUT}s" >&2
            exit 1
        fi
        sleep 0.05
    done
}

stop() {
    local pid deadline
    pid=$(cat "$NODE_PIDFILE" 2>/dev/null || true)
    [[ -n $pid ]] || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.05
    done
    if alive "$pid"; then
        echo "node.sh: node (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM; SIGKILL" >&2
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        while alive "$pid"; do
            sleep 0.05
        done
    fi
}

case ${1:-} in
start) start ;;
stop) stop ;;
restart)
    stop
    start
    ;;
*)
    echo "usage: benches/node.sh start|stop|restart (see the comment at the top)" >&2
    exit 2
    ;;
esac
