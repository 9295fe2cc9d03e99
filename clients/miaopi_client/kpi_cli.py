"""`miaopi kpi --month YYYY-MM`: a month's KPIs per item, department, window or jurisdiction
(ReviewService.GetKpis), as a ranking table, CSV or JSON."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from miaopi.v1 import review_pb2 as rpb

from .client import Client
from .cmdline import OK, print_json

Connect = Callable[[argparse.Namespace, str], Client]

# (column, Kpi field, how a value is shown); a rate is a percentage, "-" when absent.
COLUMNS: list[tuple[str, str, str]] = [
    ("rank", "rank", "int"),
    ("key", "key", "text"),
    ("cases", "cases", "int"),
    ("instant", "instant_rate", "pct"),
    ("approved", "approval_rate", "pct"),
    ("median_days", "median_handling_days", "num"),
    ("p90_days", "p90_handling_days", "int"),
    ("on_time", "on_time_rate", "pct"),
    ("overdue", "overdue", "int"),
    ("overrides", "overrides", "int"),
    ("response", "response_rate", "pct"),
    ("resolution", "resolution_rate", "pct"),
    ("ratings", "ratings", "int"),
    ("satisfaction", "satisfaction_rate", "pct"),
    ("score", "score", "pct"),
]
_OPTIONAL = {f.name for f in rpb.Kpi.DESCRIPTOR.fields if f.has_presence}


def _cell(row: Any, field: str, how: str, raw: bool) -> str:
    if field in _OPTIONAL and not row.HasField(field):
        return "" if raw else "-"
    value = getattr(row, field)
    if raw or how in ("int", "text"):
        return str(value)
    return f"{100 * value:.1f}%" if how == "pct" else f"{value:g}"


def _table(rows: list[Any]) -> str:
    cells = [[c[0] for c in COLUMNS]] + [
        [_cell(r, field, how, raw=False) for _, field, how in COLUMNS] for r in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in cells
    )


def add_kpi_parser(sub: Any, connect: Connect) -> None:
    s = sub.add_parser(
        "kpi",
        help="a month's KPIs, ranked (督查考核)",
        description="KPIs of the cases decided in a month, per item, department, window or "
        "jurisdiction, best first (by the mean of response, resolution and satisfaction "
        "rates). A supervisor's --token sees its jurisdiction.",
    )
    s.add_argument("--month", required=True, metavar="YYYY-MM")
    s.add_argument(
        "--by", choices=("item", "department", "window", "jurisdiction"), default="department"
    )
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV: the rows, then the total")
    fmt.add_argument("--json", action="store_true", help="the whole response as JSON")

    def run(args: argparse.Namespace) -> int:
        with connect(args, "supervisor") as c:
            resp = c.call(c.review_stub.GetKpis, rpb.GetKpisRequest(month=args.month, by=args.by))
        rows = [*resp.rows, resp.total]
        if args.json:
            print_json(json_format.MessageToDict(resp, preserving_proto_field_name=True))
        elif args.csv:
            out = csv.writer(sys.stdout, lineterminator="\n")
            out.writerow([c[0] for c in COLUMNS])
            for r in rows:
                out.writerow([_cell(r, field, how, raw=True) for _, field, how in COLUMNS])
        else:
            print(f"{resp.month} by {resp.by} (response within {resp.response_working_hours:g} "
                  "office hours)")  # fmt: skip
            print(_table(rows))
        return OK

    s.set_defaults(run=run)
