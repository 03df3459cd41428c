#!/usr/bin/env bash
# Clarion benchmark battery: every case against a fresh server, RUNS times, results as JSON lines
# in benches/results/latest.jsonl and a Markdown table in benches/results/latest.md.
#
#   benches/run.sh                                   # all cases, 3 runs each (~5-10 minutes)
#   RUNS=1 benches/run.sh                            # one run of each case
#   CASES="fanout-1k-1ch-500eps trigger-c32" RUNS=1 benches/run.sh
#   SERVER_CMD='soketi start --port={port}' RESULTS_NAME=soketi benches/run.sh
#
# Environment (all optional):
#   RUNS           runs per case (default 3); the table shows the median
#   CASES          space-separated subset of the cases below (default: all, in this order)
#   DURATION       seconds of load for fanout, trigger and client-events (default 10)
#   SERVER_CMD     command that runs another server in the foreground; "{port}" is replaced by
#                  the port to listen on. It must accept app id "bench", key "bench-key",
#                  secret "bench-secret", with client events on and no presence/rate limits.
#   READY_PATH     HTTP path polled until it answers 2xx before a case starts (default "/up"
#                  for Clarion; for SERVER_CMD the default is empty = wait for the TCP port)
#   START_TIMEOUT  seconds to wait for the server to accept (default 30; 120 with SERVER_CMD)
#   STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 15)
#   COOLDOWN       seconds to pause between cases (default 1)
#   RESULTS_NAME   basename of the output files in benches/results (default "latest")
#   SKIP_BUILD=1   do not run cargo build (the release binaries must exist)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ALL_CASES="idle-19k fanout-10k-1ch-10eps fanout-10k-100ch-100eps fanout-1k-1ch-500eps trigger-c32 presence client-events write-floor-10k write-floor-10k-100"
RUNS=${RUNS:-3}
CASES=${CASES:-$ALL_CASES}
DURATION=${DURATION:-10}
SERVER_CMD=${SERVER_CMD:-}
if [[ -n $SERVER_CMD ]]; then
    READY_PATH=${READY_PATH-}
    START_TIMEOUT=${START_TIMEOUT:-120}
else
    READY_PATH=${READY_PATH-/up}
    START_TIMEOUT=${START_TIMEOUT:-30}
fi
STOP_TIMEOUT=${STOP_TIMEOUT:-15}
COOLDOWN=${COOLDOWN:-1}
RESULTS_NAME=${RESULTS_NAME:-latest}
RESULTS_DIR=$ROOT/benches/results
OUT_JSONL=$RESULTS_DIR/$RESULTS_NAME.jsonl
OUT_MD=$RESULTS_DIR/$RESULTS_NAME.md
LOG_DIR=$RESULTS_DIR/logs/$RESULTS_NAME

APP_ID=bench
APP_KEY=bench-key
APP_SECRET=bench-secret

SERVER_BIN=$ROOT/target/release/clarion
BENCH_BIN=$ROOT/target/release/clarion-bench

die() {
    echo "run.sh: $*" >&2
    exit 1
}
log() { echo "[$(date +%H:%M:%S)] $*"; }

# --- arguments --------------------------------------------------------------------------------

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer (got '$DURATION')"
[[ $START_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "START_TIMEOUT must be a positive integer"
[[ $STOP_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "STOP_TIMEOUT must be a positive integer"
for c in $CASES; do
    [[ " $ALL_CASES " == *" $c "* ]] || die "unknown case '$c' (known: $ALL_CASES)"
done
if [[ -n $SERVER_CMD && $SERVER_CMD != *"{port}"* ]]; then
    die "SERVER_CMD must contain the {port} placeholder"
fi
for tool in python3 timeout ss curl; do
    command -v "$tool" >/dev/null || die "'$tool' is required"
done

# --- open-file limit --------------------------------------------------------------------------
# idle-19k holds 19,000 sockets in each process (client and server have their own limit).

hard=$(ulimit -Hn)
if [[ $hard == unlimited ]]; then
    ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true
else
    ulimit -n "$hard"
fi
nofile=$(ulimit -n)
if [[ $nofile != unlimited ]] && ((nofile < 19500)); then
    die "the open-file limit is $nofile (hard limit $hard); idle-19k needs at least 19500.
Raise the hard limit (e.g. 'ulimit -Hn 65536' as root, or nofile in /etc/security/limits.conf)."
fi

# --- cases ------------------------------------------------------------------------------------

# The clarion-bench arguments of a case.
case_args() {
    case $1 in
    idle-19k) echo "idle --connections 19000 --channels 100 --concurrency 256" ;;
    fanout-10k-1ch-10eps) echo "fanout --subscribers 10000 --channels 1 --rate 10 --duration $DURATION" ;;
    fanout-10k-100ch-100eps) echo "fanout --subscribers 10000 --channels 100 --rate 100 --duration $DURATION" ;;
    fanout-1k-1ch-500eps) echo "fanout --subscribers 1000 --channels 1 --rate 500 --duration $DURATION" ;;
    trigger-c32) echo "trigger --concurrency 32 --duration $DURATION" ;;
    presence) echo "presence --samples 200 --joiners 1000 --concurrency 100" ;;
    client-events) echo "client-events --pairs 200 --rate 10 --duration $DURATION" ;;
    # No server: the kernel's cost of plain writes to loopback sockets, two writer threads (as
    # the server has two workers here), 9,900 sockets (each is two open files in one process).
    # The floor under fanout-10k-1ch-10eps: every socket in every round, 10 rounds/s.
    write-floor-10k) echo "write-floor --sockets 9900 --writers 2 --rate 10 --duration $DURATION" ;;
    # The floor under fanout-10k-100ch-100eps: 100 of the sockets per round, 100 rounds/s.
    write-floor-10k-100) echo "write-floor --sockets 9900 --per-round 100 --writers 2 --rate 100 --duration $DURATION" ;;
    esac
}

# Seconds after which a case is killed: several times what it normally takes.
case_timeout() {
    case $1 in
    idle-19k) echo 180 ;;
    fanout-*) echo $((120 + 3 * DURATION)) ;;
    trigger-*) echo $((60 + 2 * DURATION)) ;;
    presence) echo 180 ;;
    client-events) echo $((120 + 2 * DURATION)) ;;
    write-floor-*) echo $((60 + 2 * DURATION)) ;;
    esac
}

# --- server lifecycle -------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clarion-bench.XXXXXX")
SERVER_PID=""   # the process we started (leader of its own process group)
MEASURE_PID=""  # the process that listens on the port (what --pid measures)
SERVER_PORT=""
BENCH_PID=""

# True while a process exists and is not a zombie.
alive() {
    local state
    [[ -r /proc/$1/stat ]] || return 1
    state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $state != Z ]]
}

# True while any process of the process group $1 is alive (wrappers may leave children).
group_alive() {
    local p
    for p in $(ps -e -o pid=,pgid= | awk -v g="$1" '$2 == g { print $1 }'); do
        alive "$p" && return 0
    done
    return 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# PID of the process holding the listening socket on port $1 (empty if not found).
listener_pid() {
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true
}

write_config() {
    cat >"$WORK/clarion.toml" <<EOF
# Generated by benches/run.sh.
[[apps]]
id = "$APP_ID"
key = "$APP_KEY"
secret = "$APP_SECRET"
enable_client_messages = true
max_presence_members_per_channel = 0
max_client_events_per_second = 0
EOF
}

# start_server LOGFILE: starts a fresh server on a free port, waits until it accepts, sets
# SERVER_PID, SERVER_PORT and MEASURE_PID.
start_server() {
    local logfile=$1 port cmd deadline
    port=$(free_port)
    # The server gets its own process group (so a wrapper and its children stop together) but
    # stays in this session: a new session (setsid) would also give it its own scheduler
    # autogroup (kernel.sched_autogroup_enabled=1 here), and the kernel would then share the
    # two cores between server and load generator as two groups rather than thread by thread,
    # which more than doubled fan-out p99s measured here (docs/performance.md).
    set -m
    if [[ -z $SERVER_CMD ]]; then
        # CLARION_* variables would override the generated config; run without them.
        (
            for v in $(compgen -e | grep '^CLARION_' || true); do unset "$v"; done
            export RUST_LOG=warn
            exec "$SERVER_BIN" --config "$WORK/clarion.toml" --host 127.0.0.1 --port "$port"
        ) >"$logfile" 2>&1 </dev/null &
    else
        cmd=${SERVER_CMD//\{port\}/$port}
        echo "\$ $cmd" >"$logfile"
        bash -c "exec $cmd" >>"$logfile" 2>&1 </dev/null &
    fi
    SERVER_PID=$!
    set +m
    SERVER_PORT=$port
    MEASURE_PID=""
    deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        if ! alive "$SERVER_PID"; then
            tail -n 20 "$logfile" >&2 || true
            die "the server exited before accepting connections (log: $logfile)"
        fi
        if [[ -n $(listener_pid "$port") ]]; then
            if [[ -z $READY_PATH ]] || curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$port$READY_PATH" 2>/dev/null; then
                break
            fi
        fi
        ((SECONDS < deadline)) || {
            tail -n 20 "$logfile" >&2 || true
            die "the server did not accept on port $port within ${START_TIMEOUT}s (log: $logfile)"
        }
        sleep 0.1
    done
    MEASURE_PID=$(listener_pid "$port")
    if [[ -z $MEASURE_PID ]]; then
        MEASURE_PID=$SERVER_PID
    fi
    if [[ $MEASURE_PID != "$SERVER_PID" ]]; then
        log "server: started pid $SERVER_PID, measuring listener pid $MEASURE_PID ($(ps -o comm= -p "$MEASURE_PID" || true))"
    fi
    sleep 0.5 # let the fresh process settle before its baseline RSS is read
}

# SIGTERM to the server's process group, wait up to STOP_TIMEOUT, then SIGKILL.
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    local deadline=$((SECONDS + STOP_TIMEOUT))
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || kill -TERM "$SERVER_PID" 2>/dev/null || true
    while group_alive "$SERVER_PID" && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if group_alive "$SERVER_PID"; then
        echo "run.sh: server (pgid $SERVER_PID) still running ${STOP_TIMEOUT}s after SIGTERM; SIGKILL" >&2
        kill -KILL -- "-$SERVER_PID" 2>/dev/null || kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    MEASURE_PID=""
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $BENCH_PID ]]; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true # timeout(1) forwards it to clarion-bench
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    stop_server
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

# --- the battery ------------------------------------------------------------------------------

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    cargo build --release --bin clarion --bin clarion-bench
fi
[[ -x $BENCH_BIN ]] || die "$BENCH_BIN is missing"
[[ -n $SERVER_CMD || -x $SERVER_BIN ]] || die "$SERVER_BIN is missing"

mkdir -p "$RESULTS_DIR" "$LOG_DIR"
write_config
: >"$OUT_JSONL"

server_label=${SERVER_CMD:-clarion $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo '+dirty')}
SERVER_LABEL=$server_label CASES_SEL=$CASES RUNS=$RUNS DURATION=$DURATION NOFILE=$nofile python3 - >>"$OUT_JSONL" <<'EOF'
import json, os, platform, datetime
model = "unknown"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
try:
    load = open("/proc/loadavg").read().split()[:3]
except OSError:
    load = []
print(json.dumps({
    "case": "_meta",
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "nproc": os.cpu_count(),
    "cpu_model": model,
    "kernel": platform.release(),
    "loadavg_at_start": load,
    "server": os.environ["SERVER_LABEL"],
    "runs": int(os.environ["RUNS"]),
    "cases": os.environ["CASES_SEL"].split(),
    "duration": int(os.environ["DURATION"]),
    "nofile": os.environ["NOFILE"],
}))
EOF

started_at=$SECONDS
failed=0
ncases=$(wc -w <<<"$CASES")
for run in $(seq 1 "$RUNS"); do
    for case in $CASES; do
        log "run $run/$RUNS, case $case ($ncases cases)"
        server_log=$LOG_DIR/$case.run$run.server.log
        bench_log=$LOG_DIR/$case.run$run.bench.log
        target_args=()
        if [[ $case != write-floor-* ]]; then # the floor case measures the kernel, no server
            start_server "$server_log"
            target_args=(--host 127.0.0.1 --port "$SERVER_PORT" --app-id "$APP_ID"
                --key "$APP_KEY" --secret "$APP_SECRET" --pid "$MEASURE_PID")
        fi
        limit=$(case_timeout "$case")
        # shellcheck disable=SC2046 # case_args is deliberately word-split
        timeout --kill-after=10 "$limit" "$BENCH_BIN" "${target_args[@]}" \
            $(case_args "$case") >"$bench_log" 2>&1 &
        BENCH_PID=$!
        rc=0
        wait "$BENCH_PID" || rc=$?
        BENCH_PID=""
        sed 's/^/    /' "$bench_log" | grep -v '^    RESULT ' | tail -n 12 || true
        # Peak RSS of the server over the case, read before it stops.
        peak=$(awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$MEASURE_PID/status" 2>/dev/null || true)
        measured_pid=$MEASURE_PID
        stop_server
        result=$(grep '^RESULT ' "$bench_log" | tail -n1 | cut -c8- || true)
        if [[ $rc -eq 124 || $rc -eq 137 ]]; then
            echo "run.sh: case $case run $run timed out after ${limit}s" >&2
        fi
        if [[ -z $result || $rc -ne 0 ]]; then
            failed=$((failed + 1))
            echo "run.sh: case $case run $run failed (exit $rc${result:+, with a RESULT line}; log: $bench_log)" >&2
        fi
        CASE=$case RUN=$run RC=$rc RESULT=$result PEAK=$peak MPID=$measured_pid \
            python3 - >>"$OUT_JSONL" <<'EOF'
import json, os
rec = {"case": os.environ["CASE"], "run": int(os.environ["RUN"]), "exit_code": int(os.environ["RC"])}
raw = os.environ["RESULT"]
if raw:
    try:
        rec.update(json.loads(raw))
    except ValueError as e:
        rec["error"] = f"unparsable RESULT line: {e}"
else:
    rec["error"] = "no RESULT line" + (" (timed out)" if rec["exit_code"] in (124, 137) else "")
if os.environ["PEAK"]:
    rec["server_peak_rss_bytes"] = int(float(os.environ["PEAK"]))
if os.environ["MPID"]:
    rec["server_pid_measured"] = int(os.environ["MPID"])
print(json.dumps(rec))
EOF
        sleep "$COOLDOWN"
    done
done

log "battery done in $((SECONDS - started_at))s; $failed failed case run(s)"
python3 "$ROOT/benches/table.py" "$OUT_JSONL" "$OUT_MD"
log "results: $OUT_JSONL, table: $OUT_MD"
((failed == 0)) || exit 1
