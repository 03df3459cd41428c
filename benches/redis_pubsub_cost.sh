#!/usr/bin/env bash
# What one PUBLISH costs Redis, and each node that receives it: the two constants of the
# 100-node model in docs/cluster.md (benches/cluster_model.py). A fresh redis-server on a free
# port; R subscriber connections (redis-cli SUBSCRIBE, reading everything) on one channel;
# redis-benchmark publishing N messages of 300 bytes (a bus message's usual size) from 32
# connections; Redis's own CPU time (utime + stime from /proc) divided by N. For R in 0, 1, 10,
# 100 it prints one line per R and the fit "a µs per publish + b µs per receiver".
#
#   benches/redis_pubsub_cost.sh            # N = 200000
#   N=500000 benches/redis_pubsub_cost.sh
set -euo pipefail

N=${N:-200000}
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (redis-tools)" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/log" 2>&1 &
redis=$!
subs=()
cleanup() {
    for p in "${subs[@]}"; do kill "$p" 2>/dev/null || true; done
    kill "$redis" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
tick=$(getconf CLK_TCK)
cpu() { awk -v t="$tick" '{ print ($14 + $15) / t }' "/proc/$redis/stat"; }
payload=$(head -c 300 /dev/zero | tr '\0' x)

for r in 0 1 10 100; do
    while ((${#subs[@]} < r)); do
        redis-cli -p "$port" subscribe bench-channel >/dev/null &
        subs+=($!)
    done
    until [[ $(redis-cli -p "$port" pubsub numsub bench-channel | tail -n1) == "$r" ]]; do sleep 0.1; done
    before=$(cpu)
    redis-benchmark -p "$port" -c 32 -n "$N" -q publish bench-channel "$payload" >/dev/null
    after=$(cpu)
    python3 -c "print(f'receivers {$r:>3}: {($after - $before) / $N * 1e6:.2f} µs of Redis CPU per PUBLISH')"
    echo "$r $(python3 -c "print(($after - $before) / $N * 1e6)")" >>"$dir/points"
done
python3 - "$dir/points" <<'EOF'
import sys
pts = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
n = len(pts)
mx = sum(x for x, _ in pts) / n
my = sum(y for _, y in pts) / n
b = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
print(f"fit: {my - b * mx:.2f} µs per PUBLISH + {b:.3f} µs per receiving connection")
EOF
