#!/usr/bin/env python3
"""Draws a soak run (benches/soak.sh) as one PNG: RSS, open fds, tokio tasks, queued frames and
lost events over time, with the warm-up shaded and the verdict in the title.

    python3 benches/soak_chart.py benches/results/soak-latest.jsonl docs/images/soak.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: soak_chart.py RESULT.jsonl OUT.png")
    with open(sys.argv[1]) as f:
        r = json.loads(f.readline())
    samples = r.get("samples") or []
    if not samples:
        sys.exit("soak_chart.py: no samples in " + sys.argv[1])
    t = [s["t"] / 60 for s in samples]
    warmup = r.get("warmup", 0) / 60
    v = r.get("verdict", {})

    def series(key, scale=1.0):
        return [None if s.get(key) is None else s[key] / scale for s in samples]

    panels = [
        ("RSS (MB)", series("rss", 1e6)),
        ("open fds", series("fds")),
        ("tokio tasks", series("tasks")),
        ("queued frames", series("queued_frames")),
        ("lost events", series("lost")),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 10), sharex=True)
    for ax, (label, ys) in zip(axes, panels):
        pts = [(x, y) for x, y in zip(t, ys) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", linewidth=1)
        ax.set_ylabel(label)
        ax.axvspan(0, warmup, color="0.9", zorder=0)
        ax.grid(True, alpha=0.3)
        # From zero, so that a drift looks as large as it is.
        if label in ("RSS (MB)", "open fds") and pts:
            ax.set_ylim(bottom=0, top=max(p[1] for p in pts) * 1.15 or 1)
        elif label == "lost events":
            ax.set_ylim(bottom=0, top=max([1] + [p[1] for p in pts]) * 1.15)
    axes[-1].set_xlabel("minutes (shaded: warm-up, outside the verdict)")

    def pct(d):
        return "n/a" if d is None else f"{d * 100:.1f}%"

    verdict = "PASS" if v.get("pass") else "FAIL"
    fig.suptitle(
        f"Clarion soak, {r.get('duration', 0) / 60:.0f} min: RSS drift {pct(v.get('rss_drift'))}, "
        f"fds drift {pct(v.get('fds_drift'))}, lost {r.get('lost')}; {verdict}"
    )
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=100)


if __name__ == "__main__":
    main()
