"""Markdown table and PNG chart of a benchmark run."""

from __future__ import annotations

from pathlib import Path

from .cases import Result

GOALS = {
    # (case prefix, target prefix): (goal on speed ratio vs unpartitioned, text)
    ("single-row INSERT", "app (parent trigger)"): (0.85, ">= 0.85x"),
    ("INSERT ... SELECT", "app (parent trigger)"): (0.5, ">= 0.5x"),
    ("bulk ingest", "app service.record_many"): (0.9, ">= 0.9x"),
    ("point query", "app service"): (1 / 1.2, "time <= 1.2x (ratio >= 0.83x)"),
    ("gradebook, server side", "app service"): (2.5, ">= 2.5x (server)"),
    ("gradebook", "app service"): (2.5, ">= 2.5x"),
}


def ratios(results: list[Result]) -> dict[int, float | None]:
    """Speed vs the baseline of the same case: baseline time / this time (>1 is faster)."""
    out: dict[int, float | None] = {}
    for i, r in enumerate(results):
        name = {"bench_flat": "unpartitioned"}.get(r.baseline or "", r.baseline)
        base = next((b for b in results if b.case == r.case and b.target == name), None)
        ok = base and r.seconds == r.seconds and base.seconds == base.seconds  # not NaN
        out[i] = base.seconds / r.seconds if ok and r.seconds else None
    return out


def goal_of(r: Result) -> tuple[float, str] | None:
    for (case, target), goal in GOALS.items():
        if r.case.startswith(case) and r.target == target:
            return goal
    return None


def _fmt_time(r: Result) -> str:
    s = r.seconds
    if s != s:
        return "FAILED"
    return f"{s * 1000:.3f} ms" if s < 1 else f"{s:.2f} s"


def _fmt_extra(extra: dict) -> str:
    parts = []
    for k, v in extra.items():
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


def markdown(results: list[Result], header: str) -> str:
    rs = ratios(results)
    lines = [
        header,
        "",
        "| case | target | median | speed vs unpartitioned | goal | details |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(results):
        ratio = rs[i]
        goal = goal_of(r)
        verdict = ""
        if goal and ratio is not None:
            verdict = f"{goal[1]}: {'MET' if ratio >= goal[0] else 'NOT met'}"
        shown = f"{ratio:.2f}x" if ratio is not None else ""
        lines.append(
            f"| {r.case} | {r.target} | {_fmt_time(r)} | {shown} | {verdict} | "
            f"{_fmt_extra(r.extra)} |"
        )
    return "\n".join(lines) + "\n"


def chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = ratios(results)
    bars = [
        (f"{r.case}\n{r.target}", rs[i])
        for i, r in enumerate(results)
        if rs[i] is not None
        and not r.case.startswith("point query")
        and r.target != r.baseline
        and "unpartitioned" not in r.target
    ]
    sweep: dict[str, list[tuple[int, float]]] = {}
    for r in results:
        if r.case.startswith("point query"):
            if r.seconds == r.seconds:
                sweep.setdefault(r.target, []).append((r.extra["partitions"], r.seconds * 1000))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(16, max(6, len(bars) * 0.45)))
    ax1.barh([b[0] for b in bars], [b[1] for b in bars], color="tab:blue")
    ax1.axvline(1.0, color="black", linewidth=1)
    ax1.set_xscale("log")
    ax1.set_xlabel("speed vs unpartitioned (x, log; >1 faster)")
    ax1.invert_yaxis()
    ax1.tick_params(axis="y", labelsize=7)
    for target, pts in sweep.items():
        pts.sort()
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=target)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("leaf partitions")
    ax2.set_ylabel("ms per point query (one student, class, term)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
