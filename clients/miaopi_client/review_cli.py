"""`miaopi review ...`: the review queue (ReviewService). Reviewers list, claim, release and
decide tasks, ask for supplements, suspend and resume; supervisors escalate (督办), suspend
and resume; windows supply materials and withdraw cases."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import review_pb2 as rpb

from .client import Client
from .cmdline import MAX_INT32, OK, print_json, whole_number

Connect = Callable[[argparse.Namespace, str], Client]


def task_line(t: Any) -> str:
    due = t.promised_due_date or t.supplement_due_date or "-"
    parts = [t.decision_id, t.state, t.kind, t.item_code, t.department, f"due {due}"]
    if t.warning:
        parts.append(t.warning.upper())
    if t.assignee:
        parts.append(f"by {t.assignee}")
    if t.overridden:
        parts.append("OVERRIDDEN")
    if t.escalations:
        parts.append(f"ESCALATED x{t.escalations}")
    return "  ".join(parts)


def _show(args: argparse.Namespace, message: Any, line: str) -> int:
    if args.json:
        print_json(json_format.MessageToDict(message, preserving_proto_field_name=True))
    else:
        print(line)
    return OK


def add_review_parsers(sub: Any, connect: Connect) -> None:
    review = sub.add_parser(
        "review",
        help="the review queue: list, claim, decide, supplement, withdraw",
        description="Tasks opened by MANUAL_REVIEW decisions and by approvals with deferred "
        "(容缺后补) materials. Authenticate with --token (or MIAOPI_TOKEN): a reviewer for "
        "list/claim/release/decide/supplement, the deciding window for supply/withdraw.",
    )
    rsub = review.add_subparsers(dest="review_command", required=True)

    def command(name: str, helptext: str, role: str, has_id: bool = True) -> Any:
        s = rsub.add_parser(name, help=helptext)
        if has_id:
            s.add_argument("decision_id", metavar="DECISION_ID")
        s.add_argument("--json", action="store_true", help="print the result as JSON")
        s.set_defaults(review_role=role)
        return s

    def act(rpc: str, build: Callable[[argparse.Namespace], Any]) -> Callable[..., int]:
        def run(args: argparse.Namespace) -> int:
            with connect(args, args.review_role) as c:
                resp = c.call(getattr(c.review_stub, rpc), build(args))
            return _show(args, resp, f"{task_line(resp.task)}  (recorded as seq {resp.seq})")

        return run

    s = command("list", "tasks in your grant, oldest first", "reviewer", has_id=False)
    s.add_argument(
        "--state",
        dest="states",
        action="append",
        default=[],
        metavar="STATE",
        help="only this state (repeat; default: every state not final)",
    )
    s.add_argument("--escalated", action="store_true", help="only tasks escalated (督办)")
    s.add_argument(
        "--limit",
        type=whole_number(0, MAX_INT32),
        default=0,
        help="at most this many (default: every page)",
    )
    s.add_argument(
        "--page-size",
        type=whole_number(0, MAX_INT32),
        default=50,
        help="tasks asked for per call (default 50)",
    )

    def list_tasks(args: argparse.Namespace) -> int:
        """Every page, following next_page_token, up to --limit."""
        tasks: list[Any] = []
        token = ""
        with connect(args, args.review_role) as c:
            while True:
                want = args.page_size
                if args.limit:
                    want = min(want, args.limit - len(tasks))
                req = rpb.ListTasksRequest(
                    states=args.states, page_size=want, page_token=token,
                    escalated_only=args.escalated,
                )  # fmt: skip
                resp = c.call(c.review_stub.ListTasks, req)
                tasks.extend(resp.tasks)
                token = resp.next_page_token
                if not token or (args.limit and len(tasks) >= args.limit):
                    break
        everything = rpb.ListTasksResponse(tasks=tasks)
        return _show(args, everything, "\n".join(task_line(t) for t in tasks) or "no tasks")

    s.set_defaults(run=list_tasks)

    s = command("show", "one task, with its deadlines and pauses", "reviewer")

    def show(args: argparse.Namespace) -> int:
        with connect(args, args.review_role) as c:
            resp = c.call(c.review_stub.GetTask, rpb.GetTaskRequest(decision_id=args.decision_id))
        return _show(args, resp, task_line(resp.task))

    s.set_defaults(run=show)

    s = command("rate", "the citizen's rating of a closed case (好差评), once", "window")
    s.add_argument("--score", type=int, required=True, choices=range(1, 6), metavar="1-5")
    s.add_argument("--comment", default="", help="optional, at most 500 characters")
    s.set_defaults(
        run=act(
            "RateCase",
            lambda a: rpb.RateCaseRequest(
                decision_id=a.decision_id, score=a.score, comment=a.comment
            ),
        )
    )

    s = command("claim", "take a task (one reviewer wins)", "reviewer")
    s.set_defaults(run=act("ClaimTask", lambda a: rpb.ClaimTaskRequest(decision_id=a.decision_id)))
    s = command("release", "give a claimed task back", "reviewer")
    s.set_defaults(
        run=act("ReleaseTask", lambda a: rpb.ReleaseTaskRequest(decision_id=a.decision_id))
    )

    s = command("decide", "record your decision on a claimed task", "reviewer")
    s.add_argument("--outcome", required=True, choices=("APPROVE", "REJECT"))
    s.add_argument(
        "--reason",
        dest="reasons",
        action="append",
        default=[],
        required=True,
        help="a reason (repeat)",
    )
    s.add_argument(
        "--basis",
        dest="legal_basis",
        action="append",
        default=[],
        help="legal basis, e.g. 行政许可法 第三十八条 (repeat; needed to reject)",
    )
    s.add_argument(
        "--justification",
        default="",
        help="why you decide against the rules' verdict (needed then; flagged)",
    )
    s.set_defaults(
        run=act(
            "DecideTask",
            lambda a: rpb.DecideTaskRequest(
                decision_id=a.decision_id,
                outcome=pb.Outcome.Value(f"OUTCOME_{a.outcome}"),
                reasons=a.reasons,
                legal_basis=a.legal_basis,
                justification=a.justification,
            ),
        )
    )

    s = command("supplement", "ask for materials, all at once (the clock stops)", "reviewer")
    s.add_argument(
        "--material",
        dest="materials",
        action="append",
        default=[],
        required=True,
        metavar="ID",
        help="a material to supply (repeat)",
    )
    s.add_argument("--note", default="", help="what is wrong with what was given")
    s.set_defaults(
        run=act(
            "RequestSupplement",
            lambda a: rpb.RequestSupplementRequest(
                decision_id=a.decision_id, materials=a.materials, note=a.note
            ),
        )
    )

    s = command(
        "escalate", "escalate a task (督办, supervisor): its people are notified", "supervisor"
    )
    s.add_argument("--note", required=True, help="what you ask for (recorded, sent)")
    s.set_defaults(
        run=act(
            "EscalateTask",
            lambda a: rpb.EscalateTaskRequest(decision_id=a.decision_id, note=a.note),
        )
    )

    s = command(
        "suspend",
        "stop the clock for an Art. 45 period (the assignee or a supervisor)",
        "reviewer",
    )
    s.add_argument(
        "--reason",
        required=True,
        choices=(
            "hearing",
            "tendering",
            "auction",
            "testing",
            "inspection",
            "quarantine",
            "appraisal",
            "expert_review",
        ),
        help="the 行政许可法 Art. 45 ground",
    )
    s.add_argument("--note", default="", help="detail (recorded)")
    s.set_defaults(
        run=act(
            "SuspendTask",
            lambda a: rpb.SuspendTaskRequest(
                decision_id=a.decision_id, reason=a.reason, note=a.note
            ),
        )
    )

    s = command("resume", "restart the clock after an Art. 45 period", "reviewer")
    s.add_argument("--note", default="", help="detail (recorded)")
    s.set_defaults(
        run=act(
            "ResumeTask",
            lambda a: rpb.ResumeTaskRequest(decision_id=a.decision_id, note=a.note),
        )
    )

    s = command("supply", "supply the materials asked for (window)", "window")
    s.add_argument(
        "--material",
        dest="materials",
        action="append",
        default=[],
        required=True,
        metavar="ID",
        help="a material supplied (repeat)",
    )
    s.set_defaults(
        run=act(
            "SupplyMaterials",
            lambda a: rpb.SupplyMaterialsRequest(decision_id=a.decision_id, materials=a.materials),
        )
    )

    s = command("withdraw", "withdraw the case at the applicant's request (window)", "window")
    s.add_argument("--reason", required=True, help="why (recorded)")
    s.set_defaults(
        run=act(
            "WithdrawCase",
            lambda a: rpb.WithdrawCaseRequest(decision_id=a.decision_id, reason=a.reason),
        )
    )
