"""Geometry of the admin dashboard's bar chart (size per term), drawn as SVG by the template."""

from __future__ import annotations

from typing import Any

from ..reporting.stats import TermTotal

__all__ = ["term_chart"]


def term_chart(totals: list[TermTotal]) -> dict[str, Any]:
    """Geometry of a horizontal SVG bar chart of total bytes per term."""
    bar_h, gap, label_w, width = 18, 6, 130, 420
    bars = []
    for i, t in enumerate(totals):
        y = i * (bar_h + gap)
        bars.append(
            {
                "label": t.term_id or "(class tables)",
                "y": y,
                "text_y": y + bar_h - 5,
                "w": max(1, round(t.share * width)) if t.total_bytes else 0,
                "bytes": t.total_bytes,
                "rows": t.rows,
                "partitions": t.partitions,
            }
        )
    return {
        "bars": bars,
        "label_w": label_w,
        "bar_h": bar_h,
        "width": label_w + width + 110,
        "height": max(1, len(bars) * (bar_h + gap)),
        "value_x": label_w + width + 6,
    }
