"""`miaopi alerts [--after SEQ] [--follow]`: the alerts of a supervisor's jurisdiction
(ReviewService.WatchAlerts): overdue and due-soon tasks, lapsed 容缺 materials, overrides."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from .client import Client
from .cmdline import OK, seq_arg

Connect = Callable[[argparse.Namespace, str], Client]


def alert_line(a: Any) -> str:
    due = f"due {a.due_date}" if a.due_date else ""
    to = f"to {', '.join(a.recipients)}" if a.recipients else ""
    parts = [f"#{a.seq}", a.kind.upper(), a.decision_id, a.item_code, a.department,
             a.jurisdiction, due, to, f"「{a.note}」" if a.note else ""]  # fmt: skip
    return "  ".join(p for p in parts if p)


def add_alerts_parser(sub: Any, connect: Connect) -> None:
    s = sub.add_parser(
        "alerts",
        help="alerts in your jurisdiction (overdue, due soon, overrides, escalations)",
        description="Alerts raised by the server's scheduler, oldest first. Resume with "
        "--after SEQ (the last # printed): none is lost or repeated, also across a restart.",
    )
    s.add_argument("--after", type=seq_arg, default=0, metavar="SEQ", help="after this alert")
    s.add_argument("--follow", action="store_true", help="keep watching for new alerts")
    s.add_argument("--json", action="store_true", help="one JSON object per line")

    def run(args: argparse.Namespace) -> int:
        with connect(args, "supervisor") as c:
            try:
                for a in c.watch_alerts(args.after, args.follow):
                    if args.json:
                        text = json_format.MessageToJson(
                            a, preserving_proto_field_name=True, indent=None
                        )
                        print(text, flush=True)
                    else:
                        print(alert_line(a), flush=True)
            except KeyboardInterrupt:
                print("stopped", file=sys.stderr)
        return OK

    s.set_defaults(run=run)
