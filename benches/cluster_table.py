#!/usr/bin/env python3
"""The Markdown table of benches/cluster.sh: medians over runs per (backend, nodes, build)."""
import json
import statistics
import sys
from collections import defaultdict


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec="{:.0f}"):
    return "–" if x is None else spec.format(x)


rows = defaultdict(lambda: defaultdict(list))
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = (r["backend"], r["nodes"], r["build"])
    load = r["load"]
    if load == "trigger":
        rows[key]["trigger_rps"].append(r.get("requests_per_second"))
        continue
    rows[key][load + "_p99"].append((r.get("latency") or {}).get("p99_ms"))
    rows[key][load + "_lost"].append(r.get("lost"))
    rows[key][load + "_published"].append(r.get("published"))
    bus = r.get("bus_received_per_node") or []
    # Nodes 2..N: node 1 publishes (see cluster.sh on the "before" counter).
    others = [b for b in bus[1:] if b is not None]
    if others and r.get("published"):
        rows[key][load + "_share"].append(sum(others) / len(others) / r["published"])
        rows[key][load + "_per_node"].append(sum(others) / len(others) / r["seconds"])

print("| Redis | nodes | build | fan-out p99, grouped (ms) | spread (ms) | lost | bus msgs/s per other node, grouped | share of events | spread | share | triggers/s (c32) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for key in sorted(rows):
    v = rows[key]
    lost = sum(x or 0 for x in v["grouped_lost"] + v["spread_lost"])
    print(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            key[0],
            key[1],
            key[2],
            fmt(median(v["grouped_p99"]), "{:.2f}"),
            fmt(median(v["spread_p99"]), "{:.2f}"),
            lost,
            fmt(median(v["grouped_per_node"])),
            fmt(median(v["grouped_share"]), "{:.2f}"),
            fmt(median(v["spread_per_node"])),
            fmt(median(v["spread_share"]), "{:.2f}"),
            fmt(median(v["trigger_rps"])),
        )
    )
