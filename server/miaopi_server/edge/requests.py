"""What a request may carry besides the case: its envelope fields and list queries, each bad
field reported (all at once) as a FieldViolation, before any work is done for it."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.audit.record import fixed_time
from miaopi_server.audit.store import ListFilter
from miaopi_server.errors import FieldViolation

MAX_REQUEST_ID = 128
MAX_WINDOW_ID = 64
MAX_OPERATOR_ID = 64
MAX_CONSENT_REFERENCE = 128
MAX_DECISION_ID = 128  # a UUID; longer is no decision's
DEFAULT_PAGE = 50
MAX_PAGE = 1000
MAX_SEQ = 2**63 - 1  # SQLite's INTEGER and PostgreSQL's bigint


def identifier(name: str, value: str, limit: int) -> list[FieldViolation]:
    """Identifiers travel into receipts, logs and metadata: bounded, and printable (no control,
    format or line-separator characters, e.g. U+202E or U+2028)."""
    if len(value) > limit:
        return [FieldViolation(name, f"过长（不超过 {limit} 个字符）")]
    if not value.isprintable() or value != value.strip():
        return [FieldViolation(name, "含有控制字符、格式字符或首尾空白")]
    return []


def decision_id_violations(decision_id: str) -> list[FieldViolation]:
    """A decision id to look up: required, bounded and printable. A NUL in it made the
    PostgreSQL store refuse the query, which answered UNAVAILABLE ("audit unavailable")."""
    if not decision_id:
        return [FieldViolation("decision_id", "必填")]
    return identifier("decision_id", decision_id, MAX_DECISION_ID)


def envelope_violations(request: pb.DecideRequest) -> list[FieldViolation]:
    """The identifiers around a case: bounded, printable (they are sealed into receipts)."""
    return [
        *identifier("request_id", request.request_id, MAX_REQUEST_ID),
        *identifier("window.window_id", request.window.window_id, MAX_WINDOW_ID),
        *identifier("window.operator_id", request.window.operator_id, MAX_OPERATOR_ID),
        *identifier("consent.reference", request.consent.reference, MAX_CONSENT_REFERENCE),
    ]


@dataclass(frozen=True)
class ListQuery:
    filter: ListFilter
    page_size: int
    before_seq: int  # 0: from the newest


def encode_page_token(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode()


def _before_seq(token: str) -> int | None:
    if len(token) > 32:
        return None
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        return None
    if not text.isdigit() or not 0 < int(text) <= MAX_SEQ:
        return None
    return int(text)


def _time(name: str, ts: object, violations: list[FieldViolation]) -> str:
    try:
        return fixed_time(ts.ToDatetime(dt.UTC))  # type: ignore[attr-defined]
    except (ValueError, OverflowError, OSError):
        violations.append(FieldViolation(name, "时间超出范围"))
        return ""


def parse_list_request(
    request: pb.ListDecisionsRequest, window_id: str
) -> tuple[ListQuery | None, list[FieldViolation]]:
    """The query a ListDecisions request asks for (`window_id` as the caller may see it), or
    every bad field of it."""
    violations: list[FieldViolation] = []
    if request.page_size < 0:
        violations.append(FieldViolation("page_size", "不能为负数"))
    size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
    before = 0
    if request.page_token:
        parsed = _before_seq(request.page_token)
        if parsed is None:
            violations.append(FieldViolation("page_token", "无效的分页标记"))
        else:
            before = parsed
    outcome = ""
    if request.outcome:
        if request.outcome not in pb.Outcome.values():
            violations.append(FieldViolation("outcome", "未知的决定结果"))
        else:
            outcome = pb.Outcome.Name(request.outcome).removeprefix("OUTCOME_")
    decided_from = (
        _time("decided_from", request.decided_from, violations)
        if request.HasField("decided_from")
        else ""
    )
    decided_to = (
        _time("decided_to", request.decided_to, violations)
        if request.HasField("decided_to")
        else ""
    )
    for name, value, limit in (("item_code", request.item_code, 64), ("window_id", window_id, 64)):
        violations += identifier(name, value, limit)
    if violations:
        return None, violations
    query = ListQuery(
        ListFilter(
            item_code=request.item_code,
            outcome=outcome,
            window_id=window_id,
            decided_from=decided_from,
            decided_to=decided_to,
        ),
        size,
        before,
    )
    return query, []
