"""`datahub bench plot`: one PNG of an ingest and a query result (matplotlib, the `bench` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datahub.errors import ConfigError

INGEST_BARS = [
    ("broker ceiling", "broker_ceiling_msgs_per_s"),
    ("DB COPY ceiling ÷ readings/uplink", "db_ceiling_uplinks_per_s"),
    ("pure stages, 1 process", "pure_stages_uplinks_per_s"),
    ("end to end, QoS 0", "end_to_end_uplinks_per_s"),
    ("end to end, QoS 1", "end_to_end_qos1_uplinks_per_s"),
    ("naive: INSERT + commit per uplink", "naive_uplinks_per_s"),
]
# Parts of the machine's CPU time per uplink, stacked; "other" is the rest of the machine.
CPU_PARTS = [
    ("ingest workers", "ingest", "#2a7"),
    ("database", "database", "#37b"),
    ("broker", "broker", "#e93"),
    ("publishers", "publishers", "#999"),
]
CPU_BUDGETS = [
    ("half the ceiling", "half_the_ceiling", "#c44"),
    ("10x naive", "ten_times_naive", "#a4c"),
]
QUERIES = [
    ("90-day hourly, 1 device", "aggregate_90d_hourly", 30.0),
    ("1-day raw, 1 device", "raw_1d", None),
    ("latest, a city", "latest_city", 50.0),
    ("90-day daily, a city", "city_daily_90d", 100.0),
]


def plot(ingest: dict[str, Any] | None, query: dict[str, Any] | None, out: Path) -> None:
    """Draw the figures present (either result may be missing) into `out`."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError as exc:
        raise ConfigError("plotting needs matplotlib: pip install 'datahub[bench]'") from exc
    cpu = (ingest or {}).get("cpu_us_per_uplink") or None
    panels = [p for p in (ingest, cpu, query) if p is not None]
    if not panels:
        raise ConfigError("no results to plot")
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.6 * len(panels)), squeeze=False)
    row = 0
    if ingest is not None:
        ax = axes[row][0]
        labels = [label for label, key in INGEST_BARS if key in ingest]
        values = [ingest[key] for _, key in INGEST_BARS if key in ingest]
        bars = ax.barh(labels, values, color=["#999", "#999", "#bbb", "#2a7", "#2a7", "#c44"])
        ax.bar_label(bars, fmt="{:,.0f}", padding=3, fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labels on the decades only
        ax.invert_yaxis()
        ax.set_xlabel("uplinks (messages) per second, log scale")
        ratio = ingest.get("ratios", {}).get("end_to_end_to_ceiling")
        ax.set_title(
            f"ingest: end to end = {ratio:.0%} of the lower ceiling" if ratio else "ingest"
        )
        row += 1
    if ingest is not None and cpu is not None:
        _plot_cpu(axes[row][0], cpu, ingest.get("cpu_budget_us_per_uplink", {}))
        row += 1
    if query is not None:
        ax = axes[row][0]
        names = [(label, key, target) for label, key, target in QUERIES if f"{key}_p95_ms" in query]
        y = range(len(names))
        ax.barh([i - 0.2 for i in y], [query[f"{k}_p50_ms"] for _, k, _ in names], 0.4, label="p50")
        ax.barh([i + 0.2 for i in y], [query[f"{k}_p95_ms"] for _, k, _ in names], 0.4, label="p95")
        for i, (_, _, target) in enumerate(names):
            if target is not None:
                ax.plot([target, target], [i - 0.45, i + 0.45], color="#c44", linewidth=2)
        ax.set_yticks(list(y), [label for label, _, _ in names])
        ax.invert_yaxis()
        ax.set_xlabel("milliseconds over HTTP (red: target for p95)")
        ax.set_title(
            f"queries on {query['devices']:,} devices x {query['days']} days "
            f"({query['readings']:,} readings)\nraw series: "
            f"{query.get('raw_rps_16_clients', 0):,.0f} req/s with 16 clients"
        )
        ax.legend(loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _plot_cpu(ax: Any, cpu: dict[str, dict[str, float]], budgets: dict[str, float]) -> None:
    """Stacked CPU microseconds per uplink of each run, with what the targets' rates allow."""
    runs = list(cpu)
    left = [0.0] * len(runs)
    for label, key, color in CPU_PARTS:
        widths = [cpu[run].get(key, 0.0) for run in runs]
        ax.barh(runs, widths, left=left, label=label, color=color)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    other = [
        max(cpu[run].get("machine", 0.0) - done, 0.0) for run, done in zip(runs, left, strict=True)
    ]
    ax.barh(runs, other, left=left, label="rest of the machine", color="#ddd")
    for label, key, color in CPU_BUDGETS:
        if budgets.get(key):
            ax.axvline(budgets[key], color=color, linestyle="--", label=f"allowed at {label}")
    ax.invert_yaxis()
    ax.set_xlabel("CPU microseconds per uplink, all cores (dashed: what the cores allow)")
    ax.set_title("where the CPU goes, end to end")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
