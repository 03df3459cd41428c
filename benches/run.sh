#!/usr/bin/env bash
# Clarion benchmark battery: every case against a fresh server, RUNS times, results as JSON lines
# in benches/results/latest.jsonl and a Markdown table in benches/results/latest.md.
#
#   benches/run.sh                                   # all cases, 3 runs each (~5-10 minutes)
#   RUNS=1 benches/run.sh                            # one run of each case
#   CASES="fanout-1k-1ch-500eps trigger-c32" RUNS=1 benches/run.sh
#   SERVER_CMD='soketi start --port={port}' RESULTS_NAME=soketi benches/run.sh
#   CASES="recovery issue16" RESULTS_NAME=issue15-16 benches/run.sh    # the Clarion-only cases
#   SKIP_BUILD=1 SMOKE=1 CASES=recovery RUNS=1 RESULTS_NAME=smoke benches/run.sh  # a quick check
#
# Besides the default battery (ALL_CASES) there are Clarion-only cases that are never run by
# default: RECOVERY_CASES (missed-message recovery, issue 15: recorded channels with memory and
# Redis history, the Redis adapter alone, two nodes over Redis, a reconnect storm, the memory
# history's size), ISSUE16_CASES (watchlist sign-ins, subscription-count churn) and
# ISSUE18_CASES (the connect rate with 1,000 apps in the file or in PostgreSQL). Name them
# in CASES one by one, or as the groups "recovery", "issue16", "issue18", "tls", "issue19" (and "all" for ALL_CASES). The
# Redis cases start their own redis-server (no persistence) on a free port for each run, and
# the 2-node cases a second Clarion node on the same Redis; both are stopped after the run.
#
# Environment (all optional):
#   RUNS           runs per case (default 3); the table shows the median
#   CASES          space-separated cases or groups (default: ALL_CASES, in this order)
#   SMOKE=1        shrink the Clarion-only cases (fewer connections, 3 s of load unless DURATION
#                  says otherwise) to check that they run; the figures are not comparable
#   DURATION       seconds of load for fanout, trigger, client-events and count-churn (default
#                  10)
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
#   CARGO_TARGET_DIR  where the release binaries are (default target/)
#   SERVER_CONFIG  extra top-level lines for Clarion's generated config, e.g.
#                  SERVER_CONFIG='direct_writes = true' (CLARION_* variables are cleared
#                  before the server starts, so settings go here); named in the table's header
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ALL_CASES="idle-19k fanout-10k-1ch-10eps fanout-10k-100ch-100eps fanout-1k-1ch-500eps trigger-c32 presence client-events write-floor-10k write-floor-10k-100"
RECOVERY_CASES="recorded-1k-1ch-500eps recorded-10k-100ch-100eps fanout-redis-1k-1ch-500eps recorded-redis-1k-1ch-500eps fanout-redis-2nodes-1k-1ch-500eps recorded-redis-2nodes-1k-1ch-500eps trigger-recorded-c32 trigger-redis-c32 trigger-recorded-redis-c32 reconnect-storm-10k reconnect-storm-redis-2nodes-10k history-memory-10k"
ISSUE16_CASES="signin-storm-2k signin-storm-redis-2nodes-2k count-churn-10k count-churn-10k-off"
# Issue 18: the connect rate with 1,000 apps, in the file and in a PostgreSQL app store (the
# machine's PostgreSQL on 127.0.0.1:5432; a database is made for the case and dropped).
ISSUE18_CASES="connect-1k-apps-file connect-1k-apps-postgres"
# Issue 19: Clarion terminating TLS itself (`wss://`, `https://`; a self-signed certificate made
# with openssl for the run), each case beside its plain twin: memory per idle connection and the
# connect rate with full handshakes (idle-19k), fan-out CPU per delivery and p99.
TLS_CASES="idle-19k idle-19k-tls fanout-10k-1ch-10eps fanout-10k-1ch-10eps-tls fanout-1k-1ch-500eps fanout-1k-1ch-500eps-tls"
# Issue 19's reconnect storm: 19,000 connections (a third in presence channels) through a
# restart of their server (a node that benches/node.sh restarts), back as pusher-js comes back.
ISSUE19_CASES="$TLS_CASES restart-storm-19k"
KNOWN_CASES="$ALL_CASES $RECOVERY_CASES $ISSUE16_CASES $ISSUE18_CASES $ISSUE19_CASES"
RUNS=${RUNS:-3}
SMOKE=${SMOKE:-0}
CASES=${CASES:-$ALL_CASES}
expanded=""
for c in $CASES; do
    case $c in
    all) expanded+=" $ALL_CASES" ;;
    recovery) expanded+=" $RECOVERY_CASES" ;;
    issue16) expanded+=" $ISSUE16_CASES" ;;
    issue18) expanded+=" $ISSUE18_CASES" ;;
    tls) expanded+=" $TLS_CASES" ;;
    issue19) expanded+=" $ISSUE19_CASES" ;;
    *) expanded+=" $c" ;;
    esac
done
CASES=$(echo $expanded)
if [[ $SMOKE == 1 ]]; then
    DURATION=${DURATION:-3}
else
    DURATION=${DURATION:-10}
fi
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

SERVER_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/clarion
BENCH_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/clarion-bench

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
    [[ " $KNOWN_CASES " == *" $c "* ]] || die "unknown case '$c' (known: $KNOWN_CASES; groups: all recovery issue16 issue18 tls issue19)"
    if [[ -n $SERVER_CMD && " $ALL_CASES " != *" $c "* ]]; then
        die "case '$c' is Clarion-only (recorded channels, Redis, watchlists, app stores): not with SERVER_CMD"
    fi
    if [[ $c == *redis* ]]; then
        command -v redis-server >/dev/null || die "case '$c' needs redis-server"
    fi
    if [[ $c == *-tls ]]; then
        [[ -z $SERVER_CMD ]] || die "case '$c' configures Clarion's own TLS: not with SERVER_CMD"
        command -v openssl >/dev/null || die "case '$c' needs openssl"
    fi
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

# sz FULL SMALL: FULL normally, SMALL with SMOKE=1.
sz() { if [[ $SMOKE == 1 ]]; then echo "$2"; else echo "$1"; fi; }

RECORDED="--opt-in --channel-prefix recorded-"

# The clarion-bench arguments of a case. The 2-node cases use NODE2_PORT and the files in WORK,
# set once the servers run.
case_args() {
    local f1k
    f1k="fanout --subscribers $(sz 1000 200) --channels 1 --rate $(sz 500 100) --duration $DURATION"
    # A TLS twin runs its plain twin's load over TLS.
    if [[ $1 == *-tls ]]; then
        echo "--tls $(case_args "${1%-tls}")"
        return
    fi
    case $1 in
    # Recovery (issue 15). recorded-* channels keep history ([[apps.recovery]] in the config);
    # --opt-in subscribers get stamped frames. Compare each with its plain twin.
    recorded-1k-1ch-500eps) echo "$f1k $RECORDED" ;;
    recorded-10k-100ch-100eps) echo "fanout --subscribers $(sz 10000 1000) --channels 100 --rate 100 --duration $DURATION $RECORDED" ;;
    fanout-redis-1k-1ch-500eps) echo "$f1k" ;;
    recorded-redis-1k-1ch-500eps) echo "$f1k $RECORDED" ;;
    fanout-redis-2nodes-1k-1ch-500eps) echo "$f1k --also-port $NODE2_PORT" ;;
    recorded-redis-2nodes-1k-1ch-500eps) echo "$f1k $RECORDED --also-port $NODE2_PORT" ;;
    trigger-recorded-c32 | trigger-recorded-redis-c32) echo "trigger --concurrency 32 --duration $DURATION --channel recorded-nobody" ;;
    trigger-redis-c32) echo "trigger --concurrency 32 --duration $DURATION" ;;
    reconnect-storm-10k) echo "reconnect-storm --subscribers $(sz 10000 1000) --channels 100 --mode drop" ;;
    reconnect-storm-redis-2nodes-10k) echo "reconnect-storm --subscribers $(sz 10000 1000) --channels 100 --mode restart --also-port $NODE2_PORT --restart-cmd $WORK/node2-restart --pid-file $NODE_PIDFILE" ;;
    history-memory-10k) echo "history-memory --channels $(sz 10000 500) --events 100 --metrics-port $METRICS_PORT" ;;
    # Issue 16.
    signin-storm-2k) echo "signin-storm --connections $(sz 2000 300)" ;;
    signin-storm-redis-2nodes-2k) echo "signin-storm --connections $(sz 2000 300) --also-port $NODE2_PORT" ;;
    count-churn-10k | count-churn-10k-off) echo "count-churn --subscribers $(sz 10000 1000) --rate 500 --churners 50 --duration $DURATION" ;;
    idle-19k) echo "idle --connections 19000 --channels 100 --concurrency 256" ;;
    restart-storm-19k) echo "restart-storm --connections $(sz 19000 2000) --channels 100 --storm-port $NODE2_PORT --restart-cmd $WORK/node2-restart --pid-file $NODE_PIDFILE" ;;
    connect-1k-apps-*) echo "idle --connections $(sz 10000 1000) --channels 100 --concurrency 256" ;;
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
    case ${1%-tls} in
    idle-19k | connect-1k-apps-*) echo 180 ;;
    fanout-*) echo $((120 + 3 * DURATION)) ;;
    trigger-*) echo $((60 + 2 * DURATION)) ;;
    presence) echo 180 ;;
    client-events) echo $((120 + 2 * DURATION)) ;;
    write-floor-*) echo $((60 + 2 * DURATION)) ;;
    recorded-*) echo $((120 + 3 * DURATION)) ;;
    reconnect-storm-* | history-memory-* | restart-storm-*) echo 400 ;;
    signin-storm-*) echo 240 ;;
    count-churn-*) echo $((180 + 2 * DURATION)) ;;
    esac
}

# Whether a case runs on the Redis adapter, on two nodes, with recorded channels.
case_redis() { [[ $1 == *redis* ]]; }
# restart-storm's server is the node benches/node.sh manages (so the bench can restart it).
case_2nodes() { [[ $1 == *2nodes* || $1 == restart-storm-* ]]; }
case_recorded() {
    case $1 in
    recorded-* | trigger-recorded-* | reconnect-storm-* | history-memory-*) return 0 ;;
    *) return 1 ;;
    esac
}

# --- server lifecycle -------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clarion-bench.XXXXXX")
SERVER_PID=""   # the process we started (leader of its own process group)
MEASURE_PID=""  # the process that listens on the port (what --pid measures)
SERVER_PORT=""
BENCH_PID=""
REDIS_PID=""    # the redis-server of a Redis case
REDIS_PORT=""
NODE2_PORT=""   # the second node of a 2-node case (benches/node.sh; its PID in $WORK/node2.pid)
METRICS_PORT="" # the metrics port of the case that reads metrics
# What benches/node.sh needs, also when clarion-bench runs it (reconnect-storm's --restart-cmd).
export NODE_BIN=$SERVER_BIN NODE_CONFIG=$WORK/clarion.toml NODE_PIDFILE=$WORK/node2.pid
export START_TIMEOUT STOP_TIMEOUT
# case_args is word-split, so the restart command is a file without arguments.
printf '#!/bin/sh\nexec "%s/benches/node.sh" restart\n' "$ROOT" >"$WORK/node2-restart"
chmod +x "$WORK/node2-restart"

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

# write_config CASE: the server config of a case. The default battery's cases all get the same
# one; the Clarion-only cases add the Redis adapter, a recovery table for recorded-* channels,
# or an issue-16 switch.
write_config() {
    local c=$1
    {
        echo "# Generated by benches/run.sh."
        [[ -z ${SERVER_CONFIG:-} ]] || printf '%s\n' "$SERVER_CONFIG"
        if case_redis "$c"; then
            echo "adapter = \"redis\""
            echo "redis_url = \"redis://127.0.0.1:$REDIS_PORT/0\""
        fi
        if [[ $c == *-tls ]]; then
            echo "tls_cert = \"$WORK/tls.pem\""
            echo "tls_key = \"$WORK/tls.key\""
        fi
        if [[ $c == connect-1k-apps-postgres ]]; then
            echo "app_store = \"postgres\""
            echo "app_store_url = \"postgres://postgres@127.0.0.1:5432/$BENCH_DB\""
        fi
        if [[ $c == history-memory-* ]]; then
            # Keep all of it: the case measures what history costs, not the cap.
            echo "max_history_memory = 0"
            echo "metrics_port = $METRICS_PORT"
        fi
        if [[ $c == connect-1k-apps-file ]]; then
            for i in $(seq 1 999); do
                printf '[[apps]]\nid = "other-%d"\nkey = "other-key-%d"\nsecret = "other-secret-%d"\n\n' "$i" "$i" "$i"
            done
        fi
        # With the app store the apps are in the database (setup_bench_db), none in the file.
        [[ $c == connect-1k-apps-postgres ]] && return 0
        cat <<EOF
[[apps]]
id = "$APP_ID"
key = "$APP_KEY"
secret = "$APP_SECRET"
enable_client_messages = true
max_presence_members_per_channel = 0
max_client_events_per_second = 0
EOF
        if [[ $c == signin-storm-* ]]; then
            echo "enable_watchlist_events = true"
        fi
        if [[ $c == count-churn-10k ]]; then
            echo "enable_subscription_count = true"
        fi
        if case_recorded "$c"; then
            cat <<EOF

[[apps.recovery]]
channels = ["recorded-*"]
history_size = 100
history_ttl = 600
max_replay = 100
EOF
        fi
    } >"$WORK/clarion.toml"
}

# start_redis LOGFILE: a redis-server without persistence on a free port (REDIS_PORT,
# REDIS_PID), in its own process group.
start_redis() {
    local logfile=$1 deadline
    REDIS_PORT=$(free_port)
    set -m
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        >"$logfile" 2>&1 </dev/null &
    REDIS_PID=$!
    set +m
    deadline=$((SECONDS + START_TIMEOUT))
    until (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; do
        alive "$REDIS_PID" || die "redis-server exited at start (log: $logfile)"
        ((SECONDS < deadline)) || die "redis-server did not accept on port $REDIS_PORT"
        sleep 0.05
    done
}

# setup_bench_db / drop_bench_db: a PostgreSQL database (BENCH_DB) with Soketi's apps table
# holding the bench app and 999 others, for connect-1k-apps-postgres.
setup_bench_db() {
    BENCH_DB=clarion_bench_$$
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $BENCH_DB" >/dev/null ||
        die "cannot create a PostgreSQL database on 127.0.0.1:5432 for $1"
    psql -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -v ON_ERROR_STOP=1 >/dev/null <<SQL || die "cannot fill $BENCH_DB"
CREATE TABLE apps (id varchar(255) PRIMARY KEY, key varchar(255) NOT NULL, secret varchar(255) NOT NULL,
  max_connections integer NOT NULL, enable_client_messages smallint NOT NULL, enabled smallint NOT NULL,
  max_backend_events_per_sec integer NOT NULL, max_client_events_per_sec integer NOT NULL,
  max_read_req_per_sec integer NOT NULL, webhooks json, max_presence_members_per_channel smallint,
  max_presence_member_size_in_kb smallint, max_channel_name_length integer,
  max_event_channels_at_once smallint, max_event_name_length integer, max_event_payload_in_kb smallint,
  max_event_batch_size smallint, enable_user_authentication smallint NOT NULL);
INSERT INTO apps (id, key, secret, max_connections, enable_client_messages, enabled,
  max_backend_events_per_sec, max_client_events_per_sec, max_read_req_per_sec, enable_user_authentication)
  VALUES ('$APP_ID', '$APP_KEY', '$APP_SECRET', -1, 1, 1, -1, -1, -1, 0);
INSERT INTO apps (id, key, secret, max_connections, enable_client_messages, enabled,
  max_backend_events_per_sec, max_client_events_per_sec, max_read_req_per_sec, enable_user_authentication)
  SELECT 'other-' || i, 'other-key-' || i, 'other-secret-' || i, -1, 1, 1, -1, -1, -1, 0
  FROM generate_series(1, 999) AS i;
SQL
}

drop_bench_db() {
    [[ -n ${BENCH_DB:-} ]] || return 0
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null || true
    BENCH_DB=""
}

stop_redis() {
    [[ -n $REDIS_PID ]] || return 0
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
}

# start_node2 LOGFILE: the second node of a 2-node case, same config, on a free port.
start_node2() {
    NODE2_PORT=$(free_port)
    export NODE_PORT=$NODE2_PORT NODE_LOG=$1
    "$ROOT/benches/node.sh" start || die "node 2 did not start (log: $1)"
}

stop_node2() {
    [[ -n $NODE2_PORT ]] || return 0
    "$ROOT/benches/node.sh" stop || true
    rm -f "$NODE_PIDFILE"
    NODE2_PORT=""
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
            if [[ -z $READY_PATH ]] || curl -kfsS -o /dev/null -m 2 "$SCHEME://127.0.0.1:$port$READY_PATH" 2>/dev/null; then
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
    stop_node2
    stop_server
    stop_redis
    drop_bench_db
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
: >"$OUT_JSONL"
if [[ " $CASES " == *-tls\ * ]]; then
    # One self-signed certificate for the TLS cases: RSA 2048, as most deployments' are.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/tls.key" -out "$WORK/tls.pem" \
        >/dev/null 2>&1 || die "openssl could not make the TLS cases' certificate"
fi

server_label=${SERVER_CMD:-clarion $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo '+dirty')}
if [[ -z $SERVER_CMD && -n ${SERVER_CONFIG:-} ]]; then
    server_label="$server_label with ${SERVER_CONFIG//$'\n'/; }"
fi
SERVER_LABEL=$server_label CASES_SEL=$CASES RUNS=$RUNS DURATION=$DURATION NOFILE=$nofile SMOKE=$SMOKE python3 - >>"$OUT_JSONL" <<'EOF'
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
    "smoke": os.environ["SMOKE"] == "1",
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
        if case_redis "$case"; then
            start_redis "$LOG_DIR/$case.run$run.redis.log"
        fi
        if [[ $case == history-memory-* ]]; then
            METRICS_PORT=$(free_port)
        fi
        if [[ $case == connect-1k-apps-postgres ]]; then
            setup_bench_db "$case"
        fi
        write_config "$case"
        SCHEME=http
        [[ $case == *-tls ]] && SCHEME=https
        if [[ $case != write-floor-* ]]; then # the floor case measures the kernel, no server
            start_server "$server_log"
            target_args=(--host 127.0.0.1 --port "$SERVER_PORT" --app-id "$APP_ID"
                --key "$APP_KEY" --secret "$APP_SECRET" --pid "$MEASURE_PID")
        fi
        if case_2nodes "$case"; then
            start_node2 "$LOG_DIR/$case.run$run.node2.log"
            target_args+=(--watch "node2=@$NODE_PIDFILE")
        fi
        if [[ -n $REDIS_PID ]]; then
            target_args+=(--watch "redis=$REDIS_PID")
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
        peak2=""
        if [[ -n $NODE2_PORT ]]; then
            peak2=$(awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$(cat "$NODE_PIDFILE" 2>/dev/null || echo none)/status" 2>/dev/null || true)
        fi
        measured_pid=$MEASURE_PID
        stop_node2
        stop_server
        stop_redis
        drop_bench_db
        result=$(grep '^RESULT ' "$bench_log" | tail -n1 | cut -c8- || true)
        if [[ $rc -eq 124 || $rc -eq 137 ]]; then
            echo "run.sh: case $case run $run timed out after ${limit}s" >&2
        fi
        if [[ -z $result || $rc -ne 0 ]]; then
            failed=$((failed + 1))
            echo "run.sh: case $case run $run failed (exit $rc${result:+, with a RESULT line}; log: $bench_log)" >&2
        fi
        CASE=$case RUN=$run RC=$rc RESULT=$result PEAK=$peak PEAK2=$peak2 MPID=$measured_pid \
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
if os.environ["PEAK2"]:
    rec["node2_peak_rss_bytes"] = int(float(os.environ["PEAK2"]))
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
