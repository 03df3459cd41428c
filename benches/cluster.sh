#!/usr/bin/env bash
# Clarion's cluster benchmark (issue 17): N local nodes (2 and 4) on one Redis and on a
# three-master Redis Cluster, each started fresh for every run; figures for cross-node fan-out
# p99, trigger throughput and the bus messages each node receives with subscribers over 100
# channels. Results as JSON lines in benches/results/$RESULTS_NAME.jsonl and a Markdown table in
# benches/results/$RESULTS_NAME.md (medians of RUNS).
#
#   benches/cluster.sh                                    # every case, 3 runs (~10 minutes)
#   RUNS=1 BACKENDS=single NODES=2 benches/cluster.sh     # a quick look
#   BEFORE_BIN=/path/to/old/clarion benches/cluster.sh    # also run an older build ("before")
#
# Per (backend, nodes, build) three loads, publishing through node 1 over HTTP:
#   grouped  fan-out: 1,000 subscribers over 100 channels, 500 events/s for DURATION s;
#            subscriber i watches channel i % 100 on node i % N, so each channel has
#            subscribers on one node (the case interest-based fan-out is for)
#   spread   the same with each channel's subscribers on every node (its worst case)
#   trigger  32 concurrent HTTP publishers on a channel nobody watches, DURATION s
# The bus messages a node received are its `clarion_redis_received_total` difference over
# the publishing phase. Before interest-based fan-out that counter did not count the messages
# a node published itself and got back, so node 1's "before" figure reads 0 although it
# received them all; the table shows nodes 2..N.
#
# Environment (all optional): RUNS (3), DURATION (10), NODES ("2 4"), BACKENDS
# ("single cluster"), BUILDS ("after", plus "before" when BEFORE_BIN is set), RESULTS_NAME
# (cluster), SKIP_BUILD=1, CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
NODES=${NODES:-"2 4"}
BACKENDS=${BACKENDS:-"single cluster"}
RESULTS_NAME=${RESULTS_NAME:-cluster}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
AFTER_BIN=$TARGET/release/clarion
BENCH_BIN=$TARGET/release/clarion-bench
if [[ -n ${BEFORE_BIN:-} ]]; then BUILDS=${BUILDS:-"before after"}; else BUILDS=${BUILDS:-after}; fi
OUT_JSON=$ROOT/benches/results/$RESULTS_NAME.jsonl
OUT_MD=$ROOT/benches/results/$RESULTS_NAME.md

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}
command -v redis-server >/dev/null || die "needs redis-server"
command -v redis-cli >/dev/null || die "needs redis-cli"
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release --bins
fi
[[ -x $AFTER_BIN && -x $BENCH_BIN ]] || die "no release binaries in $TARGET/release"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clarion-cluster.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# A port whose Redis Cluster bus port (port + 10000) is free too.
free_cluster_port() {
    local p
    while :; do
        p=$(free_port)
        ((p > 1024 && p < 55535)) || continue
        (exec 3<>"/dev/tcp/127.0.0.1/$((p + 10000))") 2>/dev/null && continue
        echo "$p"
        return
    done
}

wait_port() {
    local deadline=$((SECONDS + 20))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        ((SECONDS < deadline)) || die "nothing listens on $1"
        sleep 0.1
    done
}

# start_redis BACKEND: one redis-server, or three cluster-enabled masters joined into a cluster.
# Sets REDIS_LINE (the config lines for the nodes) and REDIS_WATCH (--watch arguments).
start_redis() {
    local dir=$WORK/redis.$RANDOM ports=() p
    mkdir -p "$dir"
    REDIS_WATCH=()
    if [[ $1 == single ]]; then
        p=$(free_port)
        redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
            >"$dir/log" 2>&1 &
        PIDS+=($!)
        REDIS_WATCH+=(--watch "redis=$!")
        wait_port "$p"
        REDIS_LINE="redis_url = \"redis://127.0.0.1:$p/0\""
        return
    fi
    for i in 1 2 3; do
        p=$(free_cluster_port)
        mkdir -p "$dir/$i"
        redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir/$i" \
            --cluster-enabled yes --cluster-config-file nodes.conf >"$dir/$i/log" 2>&1 &
        PIDS+=($!)
        REDIS_WATCH+=(--watch "redis$i=$!")
        wait_port "$p"
        ports+=("$p")
    done
    redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
        >"$dir/create.log" 2>&1 || die "redis-cli --cluster create failed (see $dir/create.log)"
    local deadline=$((SECONDS + 20))
    until redis-cli -p "${ports[0]}" cluster info | grep -q 'cluster_state:ok'; do
        ((SECONDS < deadline)) || die "the Redis Cluster did not become ok"
        sleep 0.2
    done
    local seeds
    seeds=$(printf '"redis://127.0.0.1:%s", ' "${ports[@]}")
    REDIS_LINE="redis_mode = \"cluster\"
redis_cluster_nodes = [${seeds%, }]"
}

# start_nodes BIN N: N nodes on the Redis of start_redis. Sets NODE_PORTS, METRIC_PORTS,
# NODE_PIDS.
start_nodes() {
    local bin=$1 n=$2 i port metrics
    NODE_PORTS=() METRIC_PORTS=() NODE_PIDS=()
    for i in $(seq 1 "$n"); do
        port=$(free_port)
        metrics=$(free_port)
        cat >"$WORK/node$i.toml" <<EOF
adapter = "redis"
$REDIS_LINE
redis_prefix = "bench"
metrics_port = $metrics
[[apps]]
id = "bench"
key = "bench-key"
secret = "bench-secret"
EOF
        RUST_LOG=warn "$bin" --config "$WORK/node$i.toml" --host 127.0.0.1 --port "$port" \
            >"$WORK/node$i.log" 2>&1 &
        PIDS+=($!)
        NODE_PIDS+=($!)
        NODE_PORTS+=("$port")
        METRIC_PORTS+=("$metrics")
    done
    for i in $(seq 0 $((n - 1))); do
        local deadline=$((SECONDS + 30))
        until curl -fs -o /dev/null -m 2 "http://127.0.0.1:${NODE_PORTS[$i]}/ready"; do
            ((SECONDS < deadline)) || die "node $((i + 1)) not ready (log: $WORK/node$((i + 1)).log)"
            sleep 0.2
        done
    done
}

stop_all() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    PIDS=()
}

# bench LABEL ARGS...: runs clarion-bench against node 1, appends its RESULT line (with the
# case's labels) to the JSON lines.
bench() {
    local label=$1
    shift
    local others=() watch=("${REDIS_WATCH[@]}") i
    for i in $(seq 1 $((${#NODE_PORTS[@]} - 1))); do
        watch+=(--watch "node$((i + 1))=${NODE_PIDS[$i]}")
    done
    "$BENCH_BIN" --port "${NODE_PORTS[0]}" --app-id bench --key bench-key --secret bench-secret \
        --pid "${NODE_PIDS[0]}" "${watch[@]}" "$@" >"$WORK/bench.out" 2>&1 ||
        die "clarion-bench failed: $(tail -5 "$WORK/bench.out")"
    grep '^fanout: bus\|^fanout: .*lost\|^trigger' "$WORK/bench.out" | sed 's/^/    /' || true
    grep '^RESULT ' "$WORK/bench.out" | sed 's/^RESULT //' |
        python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r.update($label); print(json.dumps(r))" \
            >>"$OUT_JSON"
}

: >"$OUT_JSON"
for run in $(seq 1 "$RUNS"); do
    for backend in $BACKENDS; do
        for n in $NODES; do
            for build in $BUILDS; do
                bin=$AFTER_BIN
                [[ $build == before ]] && bin=$BEFORE_BIN
                for load in grouped spread trigger; do
                    echo "== run $run: $backend, $n nodes, $build, $load"
                    start_redis "$backend"
                    start_nodes "$bin" "$n"
                    also=() metrics=()
                    for i in $(seq 1 $((n - 1))); do also+=(--also-port "${NODE_PORTS[$i]}"); done
                    for p in "${METRIC_PORTS[@]}"; do metrics+=(--bus-metrics "$p"); done
                    label="{'backend': '$backend', 'nodes': $n, 'build': '$build', 'load': '$load', 'run': $run}"
                    case $load in
                    grouped | spread)
                        spread=()
                        [[ $load == spread ]] && spread=(--spread-channels)
                        bench "$label" fanout --subscribers 1000 --channels 100 --rate 500 \
                            --duration "$DURATION" "${also[@]}" "${metrics[@]}" "${spread[@]}"
                        ;;
                    trigger)
                        bench "$label" trigger --concurrency 32 --duration "$DURATION"
                        ;;
                    esac
                    stop_all
                done
            done
        done
    done
done
python3 "$ROOT/benches/cluster_table.py" "$OUT_JSON" >"$OUT_MD"
cat "$OUT_MD"
