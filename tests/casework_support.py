"""Helpers of the casework tests (review queue, alerts, escalation, lapse, webhook): the
principals of a credentials file, calls that are expected to fail, cases that open tasks."""

from __future__ import annotations

import contextlib
import io
import sqlite3
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from structlog.testing import capture_logs

from miaopi.v1 import approval_pb2 as pb
from miaopi_client.cli import main
from miaopi_server.edge.auth import hash_token
from tests.support import CENTENARIAN, SENIOR_MATERIALS, decide_request, resident_id

CIVIL = "南海区民政局"  # the senior allowance's department
MARKET = "南海区市场监督管理局"  # individual business registration's
PRINCIPALS: list[dict[str, Any]] = [
    {"id": "win", "role": "window", "window_id": "W-GC-01", "jurisdiction": "440605",
     "items": ["*"]},
    {"id": "win2", "role": "window", "window_id": "W-XQ-02", "jurisdiction": "440606",
     "items": ["*"]},
    {"id": "rev-civil", "role": "reviewer", "department": CIVIL, "jurisdiction": "4406"},
    {"id": "rev-civil-2", "role": "reviewer", "department": CIVIL, "jurisdiction": "440605"},
    {"id": "rev-market", "role": "reviewer", "department": MARKET, "jurisdiction": "4406"},
    {"id": "rev-civil-far", "role": "reviewer", "department": CIVIL, "jurisdiction": "440606"},
    {"id": "sup", "role": "supervisor", "jurisdiction": "440605"},
]  # fmt: skip


def md(who: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer token-{who}")]


def write_credentials(path: Path) -> Path:
    entries = [{**p, "token_sha256": hash_token(f"token-{p['id']}")} for p in PRINCIPALS]
    path.write_text(yaml.safe_dump({"principals": entries}, allow_unicode=True), "utf-8")
    return path


def code_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def violations(call: Any) -> dict[str, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(info.value)
    bad = error_details_pb2.BadRequest()
    assert status is not None and status.details[0].Unpack(bad)
    return {v.field: v.description for v in bad.field_violations}


def review_case(approval: Any, who: str = "win") -> str:
    """A MANUAL_REVIEW decision by window `who` (a server without authentication ignores
    the token): the id of the review task it opens."""
    req = decide_request("GF00012000", CENTENARIAN, SENIOR_MATERIALS)
    req.facts["applicant"]["id_number"] = resident_id("1915-06-01")  # 111: MANUAL_REVIEW
    d = approval.Decide(req, metadata=md(who)).decision
    assert d.outcome == pb.OUTCOME_MANUAL_REVIEW
    return str(d.decision_id)


def stored_alerts(db: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT decision_id, kind FROM alerts ORDER BY seq").fetchall()


def opened_long_ago(db: Path, decision_id: str, jurisdiction: str = "") -> None:
    """The deadline passes while the server is down: the task was opened in June 2025."""
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        when = "2025-06-02T02:00:00.000000Z"
        conn.execute(
            "UPDATE tasks SET opened_at = ?, jurisdiction = ?,"
            " task = json_set(task, '$.opened_at', ?, '$.jurisdiction', ?) WHERE decision_id = ?",
            (when, jurisdiction, when, jurisdiction, decision_id),
        )


def wait_until(check: Any, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def cli(target: str, who: str, *argv: str) -> tuple[int, str, str]:
    """`miaopi --token token-WHO ARGV...`: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with capture_logs(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--target", target, "--token", f"token-{who}", *argv])
    return code, out.getvalue(), err.getvalue()
