"""`miaopi notice`: the printable decision notice of a recorded decision, as A4 HTML and/or a
PDF that carries the decision and its receipt (so `miaopi verify-receipt notice.pdf` checks it
offline). From the server (GetDecision, GetItem for the item's name and department), or offline
from a saved decision (`decide --json`, or a {"decision", "case"} record)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cases import unbuildable
from .client import Client, ClientError
from .cmdline import OK, BadInput, read_saved_decision

Connect = Callable[[argparse.Namespace, str], Client]


def add_notice_parser(sub: Any, connect: Connect) -> None:
    s = sub.add_parser(
        "notice",
        help="write the printable decision notice (HTML, PDF with the receipt attached)",
        description="The notice of DECISION_ID fetched from the server, or of a saved decision "
        "(--from). The applicant's name and ID number are masked; the PDF embeds the decision "
        "and its receipt.",
    )
    source = s.add_mutually_exclusive_group(required=True)
    source.add_argument("decision_id", nargs="?", metavar="DECISION_ID", help="fetch from server")
    source.add_argument(
        "--from",
        dest="saved",
        type=Path,
        metavar="FILE",
        help="a saved decision (decide --json) or record, offline",
    )
    s.add_argument("--pdf", type=Path, metavar="FILE", help="write the PDF notice here")
    s.add_argument("--html", type=Path, metavar="FILE", help="write the HTML notice here")
    s.set_defaults(run=lambda args: _cmd_notice(args, connect))


def _cmd_notice(args: argparse.Namespace, connect: Connect) -> int:
    from miaopi_server.offline import NoticeInputError, render_notice_html, render_notice_pdf

    if args.pdf is None and args.html is None:
        raise BadInput("say where to write the notice: --pdf FILE and/or --html FILE")
    record = _saved_record(args.saved) if args.saved else _fetched_record(args, connect)
    try:
        outputs = []
        if args.html is not None:
            outputs.append((args.html, render_notice_html(record).encode("utf-8")))
        if args.pdf is not None:
            outputs.append((args.pdf, render_notice_pdf(record)))
    except NoticeInputError as exc:
        raise BadInput(f"cannot make a notice: {exc}") from None
    for path, data in outputs:
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise BadInput(f"cannot write {path}: {exc}") from None
        print(f"notice written to {path}", file=sys.stderr)
    return OK


def _fetched_record(args: argparse.Namespace, connect: Connect) -> dict[str, Any]:
    with connect(args, "window") as c:
        record = c.get_decision(args.decision_id, include_case=True)
        code = record["decision"].get("item_code", "")
        try:
            item = c.get_item(code)
        except ClientError as exc:
            if exc.code != "NOT_FOUND":  # an item no longer served: the notice shows its code
                raise
            item = {}
    record["item"] = {"name": item.get("name", ""), "department": item.get("department", "")}
    return record


def _saved_record(path: Path) -> dict[str, Any]:
    """A saved decision or record, or the sealed decision attached to a notice PDF (a trusted
    copy is printed from what the seal covers, not from the pages)."""
    text, _ = read_saved_decision(str(path), path)
    try:
        saved = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"cannot read decision {path}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"cannot read decision {path}: {unbuildable(exc)}") from None
    if not isinstance(saved, dict):
        raise BadInput(f"decision {path}: must be a JSON object (a saved decision)")
    # `decide --json` prints the decision itself; a record wraps it as {"decision": ...}
    return {"decision": saved} if "decision_id" in saved else saved
