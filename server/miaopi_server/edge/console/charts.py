"""KPI charts as server-rendered SVG geometry: one horizontal bar per group, so the page
needs no chart library and no script; the template draws what this computes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROW, LABEL, BAR, GAP = 28, 210, 300, 6  # px in the viewBox: row height, label and bar widths


@dataclass(frozen=True)
class Bar:
    label: str
    y: int
    width: float
    text: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    height: int
    label_width: int = LABEL
    bar_width: int = BAR
    row: int = ROW


def _rate_chart(title: str, rows: list[Any], field: str) -> Chart:
    bars = []
    for i, r in enumerate(rows):
        has = r.HasField(field)
        rate = getattr(r, field) if has else 0.0
        text = f"{100 * rate:.1f}%" if has else "—"
        bars.append(Bar(r.key, i * ROW, BAR * rate, text))
    return Chart(title, bars, max(len(rows), 1) * ROW + GAP)


def _count_chart(title: str, rows: list[Any], field: str) -> Chart:
    top = max((getattr(r, field) for r in rows), default=0) or 1
    bars = [
        Bar(r.key, i * ROW, BAR * getattr(r, field) / top, str(getattr(r, field)))
        for i, r in enumerate(rows)
    ]
    return Chart(title, bars, max(len(rows), 1) * ROW + GAP)


def kpi_charts(rows: list[Any]) -> list[Chart]:
    return [
        _rate_chart("秒批率", rows, "instant_rate"),
        _rate_chart("按时办结率", rows, "on_time_rate"),
        _count_chart("超期件数", rows, "overdue"),
        _rate_chart("满意率", rows, "satisfaction_rate"),
    ]
