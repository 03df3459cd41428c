#!/usr/bin/env python3
"""Turns the JSON lines written by benches/run.sh into a Markdown table.

    python3 benches/table.py [results.jsonl [table.md]]

Defaults: benches/results/latest.jsonl -> benches/results/latest.md. One row per figure, with
its target, the median over the runs and each run's value. Standard library only.
"""

import json
import os
import platform
import statistics
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))

FANOUT_CASES = [
    # case, description, p99 target (ms), CPU-s per million target
    ("fanout-10k-1ch-10eps", "10k subscribers, 1 channel, 10 events/s", 25, 2.5),
    ("fanout-10k-100ch-100eps", "10k subscribers, 100 channels, 100 events/s", 2, None),
    ("fanout-1k-1ch-500eps", "1k subscribers, 1 channel, 500 events/s", 20, None),
]


def get(rec, *path):
    """rec[path[0]][path[1]]..., or None."""
    v = rec
    for p in path:
        if not isinstance(v, dict) or p not in v:
            return None
        v = v[p]
    return v


def kb(rec):
    b = get(rec, "rss_per_connection_bytes")
    return None if b is None else b / 1024


def per_conn_total(n):
    """Extrapolated memory (GiB) for n connections from the idle per-connection figure."""

    def f(rec):
        k = kb(rec)
        return None if k is None else k * n / 1024 / 1024

    return f


def field(*path):
    return lambda rec: get(rec, *path)


def fmt_int(v):
    return f"{v:,.0f}"


def fmt_ms(v):
    return f"{v:.3f}" if v < 1 else f"{v:.2f}"


def fmt_2(v):
    return f"{v:.2f}"


def fmt_gib(v):
    return f"{v:.2f} GiB"


# (case, figure, target text, check, extractor, formatter); check is (op, bound) or None.
def rows():
    r = [
        ("idle-19k", "Memory per idle subscribed connection (KB)", "≤ 16 KB",
         ("<=", 16), kb, fmt_2),
        ("idle-19k", "Memory for 100,000 connections (computed, not measured)", "—",
         None, per_conn_total(100_000), fmt_gib),
        ("idle-19k", "Memory for 1,000,000 connections (computed, not measured)", "—",
         None, per_conn_total(1_000_000), fmt_gib),
        ("idle-19k", "Idle connections held (of 19,000)", "19,000",
         (">=", 19000), field("connected"), fmt_int),
        ("idle-19k", "Idle connection failures", "0",
         ("<=", 0), field("failures"), fmt_int),
        ("idle-19k", "Connect+subscribe rate (/s)", "≥ 15,000/s",
         (">=", 15000), field("connect_rate"), fmt_int),
    ]
    for case, desc, p99, cpu in FANOUT_CASES:
        r += [
            (case, f"Fanout {desc}: lost deliveries", "0",
             ("<=", 0), field("lost"), fmt_int),
            (case, f"Fanout {desc}: publish errors", "0",
             ("<=", 0), field("publish_errors"), fmt_int),
            (case, f"Fanout {desc}: latency p50 (ms)", "—",
             None, field("latency", "p50_ms"), fmt_ms),
            (case, f"Fanout {desc}: latency p99 (ms)", f"≤ {p99} ms",
             ("<=", p99), field("latency", "p99_ms"), fmt_ms),
            (case, f"Fanout {desc}: deliveries/s", "—",
             None, field("deliveries_per_second"), fmt_int),
            (case, f"Fanout {desc}: server CPU-s per million deliveries",
             f"≤ {cpu}" if cpu is not None else "—",
             ("<=", cpu) if cpu is not None else None,
             field("cpu_seconds_per_million"), fmt_2),
        ]
    r += [
        ("trigger-c32", "HTTP trigger throughput, 32 connections (req/s)", "≥ 40,000/s",
         (">=", 40000), field("requests_per_second"), fmt_int),
        ("trigger-c32", "HTTP trigger latency p99 (ms)", "—",
         None, field("latency", "p99_ms"), fmt_ms),
        ("trigger-c32", "HTTP trigger non-200 responses", "0",
         ("<=", 0), field("non_200"), fmt_int),
        ("presence", "Presence join → member_added p50 (ms)", "≤ 2 ms",
         ("<=", 2), field("member_added", "p50_ms"), fmt_ms),
        ("presence", "Presence leave → member_removed p50 (ms)", "≤ 5 ms",
         ("<=", 5), field("member_removed", "p50_ms"), fmt_ms),
        ("presence", "Presence join rate, 100 at once (joins/s)", "—",
         None, field("join_rate"), fmt_int),
        ("presence", "Presence join failures (of 1,000)", "0",
         ("<=", 0), field("join_failures"), fmt_int),
        ("client-events", "Client events, 200 pairs × 10/s: delivered/s", "—",
         None, field("delivered_per_second"), fmt_int),
        ("client-events", "Client events latency p99 (ms)", "—",
         None, field("latency", "p99_ms"), fmt_ms),
        ("client-events", "Client events lost", "0",
         ("<=", 0), field("lost"), fmt_int),
        ("write-floor-10k", "Kernel floor under the 10k/1-channel case (no server; one write "
         "to each of 9,900 sockets, 10 rounds/s): CPU-s per million writes", "—",
         None, field("cpu_seconds_per_million"), fmt_2),
        ("write-floor-10k", "Kernel floor under the 10k/1-channel case: round to last byte "
         "p99 (ms)", "—",
         None, field("round_ms", "p99"), fmt_ms),
        ("write-floor-10k-100", "Kernel floor under the 10k/100-channel case (no server; 100 "
         "of 9,900 sockets per round, 100 rounds/s): CPU-s per million writes", "—",
         None, field("cpu_seconds_per_million"), fmt_2),
        ("write-floor-10k-100", "Kernel floor under the 10k/100-channel case: round to last "
         "byte p99 (ms)", "—",
         None, field("round_ms", "p99"), fmt_ms),
    ]
    return r


# The Clarion-only cases of run.sh (RECOVERY_CASES, ISSUE16_CASES): fan-out on recorded
# channels and over Redis, to set beside the plain fanout-1k-1ch-500eps / fanout-10k-100ch-100eps.
RECOVERY_FANOUT_CASES = [
    ("recorded-1k-1ch-500eps", "recorded, memory history, 1k subscribers, 1 channel, 500 events/s"),
    ("recorded-10k-100ch-100eps", "recorded, memory history, 10k subscribers, 100 channels, 100 events/s"),
    ("fanout-redis-1k-1ch-500eps", "Redis adapter, plain channel, 1k subscribers, 500 events/s"),
    ("recorded-redis-1k-1ch-500eps", "recorded, Redis history, 1k subscribers, 500 events/s"),
    ("fanout-redis-2nodes-1k-1ch-500eps", "2 nodes over Redis, plain channel, 1k subscribers, 500 events/s"),
    ("recorded-redis-2nodes-1k-1ch-500eps", "2 nodes, recorded, Redis history, 1k subscribers, 500 events/s"),
]

TRIGGER_CASES = [
    ("trigger-recorded-c32", "recorded channel, memory history"),
    ("trigger-redis-c32", "Redis adapter, plain channel"),
    ("trigger-recorded-redis-c32", "recorded channel, Redis history"),
]


def unstamped(rec):
    """Frames an opted-in subscriber received without a recovery stamp."""
    got, stamped = get(rec, "received"), get(rec, "stamped")
    return None if got is None or stamped is None else got - stamped


def watched_sum(rec):
    """CPU seconds of the server plus every watched process (second node, Redis)."""
    own = get(rec, "server_cpu_seconds")
    others = get(rec, "watched_cpu_seconds") or {}
    if own is None:
        return None
    return own + sum(v for v in others.values() if v is not None)


def per_request_us(rec):
    """Server (+ Redis) CPU µs per accepted trigger."""
    total, ok = watched_sum(rec), get(rec, "ok")
    return None if total is None or not ok else total / ok * 1e6


def megabytes(*path):
    def f(rec):
        v = get(rec, *path)
        return None if v is None else v / 1e6
    return f


def kilobytes(*path):
    def f(rec):
        v = get(rec, *path)
        return None if v is None else v / 1024
    return f


def not_recovered(rec):
    """Storm subscribers without a recovered:true marker, whatever the reason."""
    subs, ok = get(rec, "subscribers"), get(rec, "recovered")
    return None if subs is None or ok is None else subs - ok


def sum_of(*names):
    def f(rec):
        vals = [get(rec, n) for n in names]
        return None if any(v is None for v in vals) else sum(vals)
    return f


def extra_rows():
    r = []
    for case, desc in RECOVERY_FANOUT_CASES:
        r += [
            (case, f"Fanout {desc}: lost deliveries", "0", ("<=", 0), field("lost"), fmt_int),
            (case, f"Fanout {desc}: publish errors", "0",
             ("<=", 0), field("publish_errors"), fmt_int),
            (case, f"Fanout {desc}: latency p50 (ms)", "—",
             None, field("latency", "p50_ms"), fmt_ms),
            (case, f"Fanout {desc}: latency p99 (ms)", "—",
             None, field("latency", "p99_ms"), fmt_ms),
            (case, f"Fanout {desc}: deliveries/s", "—",
             None, field("deliveries_per_second"), fmt_int),
            (case, f"Fanout {desc}: node 1 CPU-s per million deliveries", "—",
             None, field("cpu_seconds_per_million"), fmt_2),
        ]
        if "redis" in case:
            r.append((case, f"Fanout {desc}: every node + Redis, CPU-s per million deliveries",
                      "—", None, field("cpu_seconds_per_million_all"), fmt_2))
        if case.startswith("recorded"):
            r.append((case, f"Fanout {desc}: frames without a recovery stamp", "0",
                      ("<=", 0), unstamped, fmt_int))
    for case, desc in TRIGGER_CASES:
        r += [
            (case, f"HTTP trigger, {desc}, 32 connections (req/s)", "—",
             None, field("requests_per_second"), fmt_int),
            (case, f"HTTP trigger, {desc}: latency p99 (ms)", "—",
             None, field("latency", "p99_ms"), fmt_ms),
            (case, f"HTTP trigger, {desc}: non-200 responses", "0",
             ("<=", 0), field("non_200"), fmt_int),
            (case, f"HTTP trigger, {desc}: server (+ Redis) CPU µs per request", "—",
             None, per_request_us, fmt_2),
        ]
    for case, desc in [("reconnect-storm-10k", "10k opted-in subscribers drop and come back "
                        "(memory history, one node)"),
                       ("reconnect-storm-redis-2nodes-10k", "10k opted-in subscribers of a "
                        "restarted node come back (Redis history, 2 nodes)")]:
        r += [
            (case, f"Reconnect storm, {desc}: subscribers", "—",
             None, field("subscribers"), fmt_int),
            (case, f"Reconnect storm, {desc}: seconds until every clarion:recovery", "—",
             None, field("storm_seconds"), fmt_2),
            (case, f"Reconnect storm, {desc}: resubscribes/s", "—",
             None, field("resubscribes_per_second"), fmt_int),
            (case, f"Reconnect storm, {desc}: recovered:true", "—",
             None, field("recovered"), fmt_int),
            (case, f"Reconnect storm, {desc}: not recovered (recovered:false, no marker, "
             "reconnect failed)", "0", ("<=", 0), not_recovered, fmt_int),
            (case, f"Reconnect storm, {desc}: missing + duplicate events of recovered "
             "subscribers", "0",
             ("<=", 0), sum_of("recovered_missing", "recovered_duplicates"), fmt_int),
            (case, f"Reconnect storm, {desc}: resubscribe → marker p99 (ms)", "—",
             None, field("resubscribe_to_marker", "p99_ms"), fmt_ms),
            (case, f"Reconnect storm, {desc}: storm start → marker p99 (ms)", "—",
             None, field("since_storm_start", "p99_ms"), fmt_ms),
            (case, f"Reconnect storm, {desc}: storm node CPU µs per resubscribe", "—",
             None, field("storm_node_cpu_us_per_resubscribe"), fmt_2),
            (case, f"Reconnect storm, {desc}: storm node peak RSS (MB)", "—",
             None, megabytes("storm_node_rss_peak"), fmt_2),
        ]
    case = "history-memory-10k"
    r += [
        (case, "Memory history, 10k channels × 100 events: RSS per recorded channel (KB)", "—",
         None, kilobytes("rss_per_channel_bytes"), fmt_2),
        (case, "Memory history: RSS per stored event (bytes)", "—",
         None, field("rss_per_event_bytes"), fmt_int),
        (case, "Memory history: history_bytes metric per stored event (bytes)", "—",
         None, field("history_bytes_per_event"), fmt_int),
        (case, "Memory history: events recorded/s (batch_events)", "—",
         None, field("events_per_second"), fmt_int),
    ]
    for case, desc in [("signin-storm-2k", "2k sign-ins with 100-id watchlists, one node"),
                       ("signin-storm-redis-2nodes-2k", "2k sign-ins with 100-id watchlists, "
                        "2 nodes over Redis")]:
        r += [
            (case, f"Watchlist, {desc}: sign-ins/s", "—",
             None, field("signins_per_second"), fmt_int),
            (case, f"Watchlist, {desc}: signin → statuses p50 (ms)", "—",
             None, field("latency", "p50_ms"), fmt_ms),
            (case, f"Watchlist, {desc}: signin → statuses p99 (ms)", "—",
             None, field("latency", "p99_ms"), fmt_ms),
            (case, f"Watchlist, {desc}: failed sign-ins", "0",
             ("<=", 0), field("failed"), fmt_int),
            (case, f"Watchlist, {desc}: transitions before the statuses frame", "0",
             ("<=", 0), field("transitions_before_statuses"), fmt_int),
            (case, f"Watchlist, {desc}: online users seen offline at the end", "0",
             ("<=", 0), field("wrong_final_statuses"), fmt_int),
            (case, f"Watchlist, {desc}: node 1 CPU µs per sign-in", "—",
             None, field("server_cpu_us_per_signin"), fmt_2),
        ]
    for case, desc in [("count-churn-10k", "subscription count on"),
                       ("count-churn-10k-off", "subscription count off")]:
        r += [
            (case, f"Churn beside 10k subscribers, {desc}: server CPU µs per subscribe or "
             "unsubscribe", "—", None, field("server_cpu_us_per_operation"), fmt_2),
            (case, f"Churn, {desc}: subscribe → succeeded p99 (ms)", "—",
             None, field("latency", "p99_ms"), fmt_ms),
            (case, f"Churn, {desc}: count frames to the 10k subscribers", "—",
             None, field("count_frames"), fmt_int),
        ]
    for case, desc in [("connect-1k-apps-file", "1,000 apps in the config file"),
                       ("connect-1k-apps-postgres", "the same 1,000 apps in PostgreSQL")]:
        r += [
            (case, f"Connect+subscribe rate, {desc} (/s)", "—",
             None, field("connect_rate"), fmt_int),
            (case, f"Connect failures, {desc}", "0",
             ("<=", 0), field("failures"), fmt_int),
        ]
    r += [
        ("restart-storm-19k", "Restart storm, 19k connections (a third in presence): seconds "
         "from the restart until all are subscribed again", "—",
         None, field("seconds_from_restart"), fmt_2),
        ("restart-storm-19k", "Restart storm: seconds from the server being back", "—",
         None, field("seconds_from_server_back"), fmt_2),
        ("restart-storm-19k", "Restart storm: first to last connection back (s; the burst, "
         "compare with the connect rate)", "—", None, field("burst_seconds"), fmt_2),
        ("restart-storm-19k", "Restart storm: connections not back", "0",
         ("<=", 0), lambda rec: None if get(rec, "connections") is None else
         get(rec, "connections") - (get(rec, "subscribed_again") or 0), fmt_int),
        ("restart-storm-19k", "Restart storm: restarted server's peak RSS (MB)", "—",
         None, megabytes("server_rss_peak"), fmt_2),
        ("restart-storm-19k", "Restart storm: member_added frames sent", "—",
         None, field("member_added"), fmt_int),
        ("restart-storm-19k", "Restart storm: refused connect attempts", "—",
         None, field("refused_attempts"), fmt_int),
    ]
    # Issue 19: each TLS case beside its plain twin (the rows of the twin are above).
    r += [
        ("idle-19k-tls", "TLS: memory per idle subscribed connection (KB; target ≤ 2× plain)",
         "—", None, kb, fmt_2),
        ("idle-19k-tls", "TLS: connect+subscribe rate, full handshakes (/s)", "—",
         None, field("connect_rate"), fmt_int),
        ("idle-19k-tls", "TLS: idle connection failures", "0",
         ("<=", 0), field("failures"), fmt_int),
    ]
    for case, desc, _, _ in FANOUT_CASES:
        if case == "fanout-10k-100ch-100eps":
            continue
        r += [
            (case + "-tls", f"TLS fanout {desc}: lost deliveries", "0",
             ("<=", 0), field("lost"), fmt_int),
            (case + "-tls", f"TLS fanout {desc}: latency p99 (ms)", "—",
             None, field("latency", "p99_ms"), fmt_ms),
            (case + "-tls", f"TLS fanout {desc}: server CPU-s per million deliveries "
             "(target ≤ 1.3× plain)", "—", None, field("cpu_seconds_per_million"), fmt_2),
        ]
    return r


def ratio_rows():
    """Figures that are one case's figure over another's, run by run (the cases of one run
    ran one after the other on the same machine): (figure, target, check, numerator case,
    its extractor, denominator case, its extractor)."""
    cpu = field("cpu_seconds_per_million")
    p99 = field("latency", "p99_ms")
    r = [
        ("Issue 19: 10k/1-channel CPU per delivery ÷ the kernel floor's CPU per write",
         "≤ 1.25", ("<=", 1.25), "fanout-10k-1ch-10eps", cpu, "write-floor-10k", cpu),
        ("Issue 19: 10k/1-channel p99 ÷ the kernel floor's round p99", "≤ 1.1", ("<=", 1.1),
         "fanout-10k-1ch-10eps", p99, "write-floor-10k", field("round_ms", "p99")),
        ("Issue 19: TLS ÷ plain memory per idle connection", "≤ 2", ("<=", 2.0),
         "idle-19k-tls", kb, "idle-19k", kb),
    ]
    for case, desc, _, _ in FANOUT_CASES:
        if case != "fanout-10k-100ch-100eps":
            r.append((f"Issue 19: TLS ÷ plain CPU per delivery, fanout {desc}", "≤ 1.3",
                      ("<=", 1.3), case + "-tls", cpu, case, cpu))
    return r


def ratio_table_rows(runs, run_numbers):
    """Markdown rows of ratio_rows() for the cases present."""
    out = []
    for figure, target, check, num, num_of, den, den_of in ratio_rows():
        if num not in runs or den not in runs:
            continue
        cells, values = [], []
        for r in run_numbers:
            a, b = runs[num].get(r), runs[den].get(r)
            va = None if a is None or "error" in a else num_of(a)
            vb = None if b is None or "error" in b else den_of(b)
            if va is None or not vb:
                cells.append("n/a")
                continue
            values.append(va / vb)
            cells.append(fmt_2(va / vb))
        measured = "n/a"
        if values:
            med = statistics.median(values)
            measured = fmt_2(med) + (" ✅" if meets(check, med) else " ❌")
        out.append("| " + " | ".join([figure, target, measured] + cells) + " |")
    return out


def meets(check, v):
    op, bound = check
    return v <= bound if op == "<=" else v >= bound


def machine_now():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release()}


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results", "latest.jsonl")
    dst = sys.argv[2] if len(sys.argv) > 2 else os.path.splitext(src)[0] + ".md"
    meta = None
    runs = defaultdict(dict)  # case -> run number -> record
    with open(src) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                print(f"table.py: {src}:{n}: not JSON, skipped", file=sys.stderr)
                continue
            if rec.get("case") == "_meta":
                meta = rec
            elif "case" in rec:
                runs[rec["case"]][rec.get("run", len(runs[rec["case"]]) + 1)] = rec

    m = meta or {}
    machine = machine_now() if meta is None else m
    run_numbers = sorted({r for case in runs.values() for r in case})
    out = ["# Clarion benchmark results", ""]
    out.append(f"- Date: {m.get('date', 'unknown (no _meta record)')}")
    out.append(
        f"- Machine: {machine.get('nproc')} CPUs, {machine.get('cpu_model')}, "
        f"Linux {machine.get('kernel')}"
        + (f"; load average at start {' '.join(m['loadavg_at_start'])}"
           if m.get("loadavg_at_start") else "")
    )
    if m.get("server"):
        out.append(f"- Server: `{m['server']}`")
    out.append(
        f"- Runs per case: {len(run_numbers)}; each case against a fresh server; the load "
        f"generator (clarion-bench) runs on the same machine"
        + (f"; {m['duration']} s of load per timed case" if m.get("duration") else "")
    )
    if m.get("note"):
        out.append(f"- Note: {m['note']}")
    if m.get("smoke"):
        out.append("- **SMOKE=1: shrunk cases (fewer connections, shorter load); a check that "
                   "the cases run, not figures to compare**")
    out.append("")

    header = ["Figure", "Target", f"Measured (median of {len(run_numbers)})"]
    header += [f"Run {r}" for r in run_numbers]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
    errors = []
    for case, figure, target, check, extract, fmt in rows() + extra_rows():
        if case not in runs:
            continue
        cells, values = [], []
        for r in run_numbers:
            rec = runs[case].get(r)
            if rec is None:
                cells.append("—")
                continue
            if "error" in rec:
                cells.append("error")
                continue
            v = extract(rec)
            if v is None:
                cells.append("n/a")
                continue
            values.append(v)
            cells.append(fmt(v))
        if values:
            med = statistics.median(values)
            measured = fmt(med)
            if check is not None:
                measured += " ✅" if meets(check, med) else " ❌"
            if len(values) < len(run_numbers):
                measured += f" ({len(values)} of {len(run_numbers)} runs)"
        else:
            measured = "n/a"
        out.append("| " + " | ".join([figure, target, measured] + cells) + " |")
    out += ratio_table_rows(runs, run_numbers)
    for case, by_run in runs.items():
        for r, rec in sorted(by_run.items()):
            if "error" in rec:
                errors.append(f"- `{case}` run {r}: {rec['error']}")

    out += [
        "",
        "✅/❌: the median meets / misses the target. \"n/a\": the figure was not reported "
        "(e.g. no server PID for memory and CPU). Memory per connection is the server's RSS "
        "growth while holding the idle connections, divided by their number; the 100k and 1M "
        "rows multiply it and were not measured (KB = 1024 bytes, GiB = 1024³ bytes). Fanout latency runs from just before the HTTP "
        "publish to the subscriber reading the frame.",
    ]
    if errors:
        out += ["", "Failed runs:", ""] + errors
    text = "\n".join(out) + "\n"
    with open(dst, "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
