"""Alerts: what each stored task calls for on a given day (pure), and on real servers: a
deadline that passed while the server was down yields exactly one alert when it comes back,
also with `--workers 2` (each alert stored and logged once, not once per process); the stream
resumes from a cursor across a restart without losing or repeating an alert."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from structlog.testing import capture_logs

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi.v1 import review_pb2 as rpb
from miaopi.v1 import review_pb2_grpc as rpb_grpc
from miaopi_client.cli import main
from miaopi_server.audit.sqlite_alerts import alerts_after
from miaopi_server.casework import states as s
from miaopi_server.casework.alerts import alert_for
from miaopi_server.casework.model import Task
from miaopi_server.clock import SHANGHAI
from miaopi_server.settings import Settings
from tests.casework_support import opened_long_ago, review_case, stored_alerts, wait_until
from tests.conftest import LiveServer, ServerProcess
from tests.support import RULESETS


def task(kind: str = s.REVIEW, state: str = s.OPEN, **changes: Any) -> Task:
    base = Task(
        decision_id="d1", kind=kind, state=state, item_code="GF1", department="民政局",
        jurisdiction="440605", window_id="W1",
        opened_at=dt.datetime(2026, 10, 9, 10, tzinfo=SHANGHAI), promised_days=5,
        statutory_days=10, supplement_days=2, rules_outcome="MANUAL_REVIEW",
        rules_verdict="APPROVE",
    )  # fmt: skip
    return Task(**{**base.__dict__, **changes})


def test_each_task_calls_for_the_alert_of_its_state_on_the_day() -> None:
    # Opened Fri 9 Oct 2026; working days after: 10 (调休 Saturday), 12, 13, 14, 15 = promised
    # due 15th; statutory (10) due 22nd. Due soon at 4 of 5 days used (14th).
    day = lambda d: dt.date(2026, 10, d)  # noqa: E731
    assert alert_for(task(), day(13)) is None
    soon = alert_for(task(), day(14))
    assert soon is not None and (soon.kind, soon.due_on) == ("due_soon", "2026-10-15")
    late = alert_for(task(state=s.CLAIMED), day(16))
    assert late is not None and (late.kind, late.due_on) == ("overdue_promised", "2026-10-15")
    gone = alert_for(task(state=s.SUSPENDED), day(23))
    assert gone is not None and (gone.kind, gone.due_on) == ("overdue_statutory", "2026-10-22")
    assert alert_for(task(state=s.DECIDED), day(23)) is None  # done, however late
    override = alert_for(task(state=s.DECIDED, overridden=True), day(23))
    assert override is not None and (override.kind, override.due_on) == ("override", "")
    pending = task(kind=s.SUPPLEMENT, state=s.SUPPLEMENT_PENDING)  # due 2 working days: 12th
    assert alert_for(pending, day(12)) is None
    lapsed = alert_for(pending, day(13))
    assert lapsed is not None and (lapsed.kind, lapsed.due_on) == (
        "supplement_overdue",
        "2026-10-12",
    )
    assert alert_for(task(kind=s.SUPPLEMENT, state=s.SUPPLEMENTED), day(30)) is None


def watch(target: str, after: int, follow: bool = False, count: int = 0) -> list[Any]:
    with grpc.insecure_channel(target) as ch:
        stream = rpb_grpc.ReviewServiceStub(ch).WatchAlerts(
            rpb.WatchAlertsRequest(after_seq=after, follow=follow), timeout=20
        )
        if not follow:
            return [r.alert for r in stream]
        got = []
        for r in stream:
            got.append(r.alert)
            if len(got) == count:
                stream.cancel()
                break
        return got


def test_alerts_survive_restarts_once_with_two_workers(tmp_path: Path) -> None:
    state, db = tmp_path / "state", tmp_path / "state" / "audit.sqlite3"
    settings = Settings(
        listen="127.0.0.1:0", rulesets=RULESETS, state_dir=state, watch_seconds=0,
        alert_interval_seconds=0,
    )  # fmt: skip
    first = LiveServer(settings)
    with grpc.insecure_channel(first.target) as ch:
        approval, review = pb_grpc.ApprovalServiceStub(ch), rpb_grpc.ReviewServiceStub(ch)
        late_id, overridden_id = review_case(approval), review_case(approval)
        review.ClaimTask(rpb.ClaimTaskRequest(decision_id=overridden_id))
        decided = review.DecideTask(
            rpb.DecideTaskRequest(
                decision_id=overridden_id, outcome=pb.OUTCOME_REJECT, reasons=["材料存疑"],
                legal_basis=["行政许可法 第三十八条"], justification="现场核查发现材料不实",
            )
        )  # fmt: skip
        assert decided.task.overridden
    first.stop()
    assert db.exists() and stored_alerts(db) == []  # no scheduler ran
    opened_long_ago(db, late_id, "440605")

    two = ServerProcess(
        RULESETS, state, "--watch", "0", "--workers", "2", "--alert-interval", "0.1"
    )
    try:
        wait_until(lambda: len(stored_alerts(db)) == 2)
        time.sleep(1.0)  # many more passes of both processes' schedulers
        assert sorted(stored_alerts(db)) == sorted(
            [(late_id, "overdue_statutory"), (overridden_id, "override")]
        )
        raised = [e for e in two.events if e["event"] == "alert.raised"]
        assert len(raised) == 2  # logged once, by the process whose insert took it
        assert {e["kind"] for e in raised} == {"overdue_statutory", "override"}
        assert all("facts" not in e and "applicant" not in e for e in raised)

        alerts = watch(two.target, 0)
        assert [(a.decision_id, a.kind) for a in alerts] == stored_alerts(db)
        assert [a.seq for a in alerts] == sorted(a.seq for a in alerts)
        assert watch(two.target, alerts[0].seq)[0].seq == alerts[1].seq
        last = alerts[-1].seq

        # Following: a third alert arrives on the open stream.
        followed: list[Any] = []
        follower = threading.Thread(
            target=lambda: followed.extend(watch(two.target, last, follow=True, count=1))
        )
        follower.start()
        with grpc.insecure_channel(two.target) as ch:
            third = review_case(pb_grpc.ApprovalServiceStub(ch))
        opened_long_ago(db, third)
        follower.join(timeout=20)
        assert [(a.decision_id, a.kind) for a in followed] == [(third, "overdue_statutory")]
        last = followed[0].seq
    finally:
        two.signal(signal.SIGTERM)
        two.wait()

    again = ServerProcess(RULESETS, state, "--watch", "0", "--alert-interval", "0.1")
    try:
        time.sleep(0.5)
        assert watch(again.target, last) == []  # resumed: nothing lost, nothing repeated
        assert len(watch(again.target, 0)) == 3 and len(stored_alerts(db)) == 3
        assert not [e for e in again.events if e["event"] == "alert.raised"]
        out = io.StringIO()
        with capture_logs(), contextlib.redirect_stdout(out):
            assert main(["--target", again.target, "alerts", "--after", str(last - 1)]) == 0
        assert out.getvalue().startswith(f"#{last}  OVERDUE_STATUTORY  {third}")
    finally:
        again.signal(signal.SIGTERM)
        again.wait()
    with contextlib.closing(sqlite3.connect(db)) as conn:  # a supervisor of 440605 sees one
        assert [a.decision_id for a in alerts_after(conn, 0, "440605", 10)] == [late_id]
        assert len(alerts_after(conn, 0, "", 10)) == 3
