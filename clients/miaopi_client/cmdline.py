"""What every `miaopi` command shares: exit codes, the bad-input error, errors on stderr, JSON
on stdout, reading a facts file and parsing a date argument.

Exit codes: 0 success, 1 failure (an RPC failed, cases fail, a check does not pass), 2 bad
input, 3 NOT_FOUND. `cli.main` turns BadInput into its message on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cases import unbuildable
from .client import MiaopiClientError

OK, FAILED, BAD_INPUT, NOT_FOUND = 0, 1, 2, 3


class BadInput(MiaopiClientError):
    """A local input (facts file, rules directory, key, audit database) cannot be used:
    the command exits 2 with this message."""


def err(message: str) -> None:
    """One line on stderr, `miaopi: message`."""
    print(f"miaopi: {message}", file=sys.stderr)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def read_facts(spec: str) -> dict[str, Any]:
    """The JSON object of facts in file `spec` ("-": stdin); BadInput when it is not one."""
    try:
        text = sys.stdin.read() if spec == "-" else Path(spec).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read facts {spec}: {exc}") from None
    try:
        facts = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"facts {spec}: invalid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"facts {spec}: invalid JSON: {unbuildable(exc)}") from None
    if not isinstance(facts, dict):
        raise BadInput(f"facts {spec}: must be a JSON object nested by subject")
    return facts


def date_arg(s: str) -> dt.date:
    """argparse type of a YYYY-MM-DD option."""
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {s!r}") from None


def read_saved_decision(spec: str, path: Path) -> tuple[str, bytes | None]:
    """The saved decision's JSON text, and the notice PDF it came from (None for JSON)."""
    from miaopi_server.offline import NoticeFileError, is_pdf, notice_attachment

    try:
        if spec == "-":
            return sys.stdin.read(), None
        raw = path.read_bytes()
        pdf = raw if is_pdf(raw) else None
        if pdf is not None:
            raw = notice_attachment(pdf)
        return raw.decode("utf-8"), pdf
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read decision {spec}: {exc}") from None
    except NoticeFileError as exc:
        raise BadInput(f"notice {spec}: {exc}") from None


MAX_SEQ = 2**63 - 1  # an audit record's or an alert's seq: int64 on the wire and in the stores
MAX_INT32 = 2**31 - 1


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """argparse type of a whole-number option from `low` to `high`. Before, a number past what
    the wire or the store holds was a traceback: ValueError from protobuf (alerts --after,
    review list --page-size) or OverflowError from SQLite (audit verify --from); a negative
    --from or --to was taken as the default."""

    def parse(s: str) -> int:
        try:
            n = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {s[:32]!r}") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, not {s[:32]}")
        return n

    return parse


seq_arg = whole_number(0, MAX_SEQ)  # a sequence number option (0: its default)
