"""Escalation (督办), Art. 45 suspensions and ListTasks paging on a real server with real
credentials: who may escalate, the note it must carry, the alert addressed to the assignee and
the department head (a supervisor with that department), the mark on the task, suspensions by
the assignee or a supervisor moving the due dates by the working days paused, pages in a
stable order; everything on a trail that `miaopi audit verify` accepts."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi.v1 import review_pb2 as rpb
from miaopi.v1 import review_pb2_grpc as rpb_grpc
from miaopi_client.cli import main
from miaopi_server.casework.deadlines import working_days_between
from miaopi_server.clock import SHANGHAI, shanghai_today
from miaopi_server.decision.workdays import add_working_days, is_working_day
from miaopi_server.edge.auth import hash_token
from miaopi_server.settings import Settings
from tests.casework_support import CIVIL, PRINCIPALS, cli, code_of, md, review_case, violations
from tests.conftest import LiveServer
from tests.support import RULESETS

HEADS: list[dict[str, Any]] = [
    # The civil affairs department's head for the district, and a city-level one whose
    # jurisdiction also covers it: the nearest level is the one notified.
    {"id": "head-civil", "role": "supervisor", "department": CIVIL, "jurisdiction": "440605"},
    {"id": "head-civil-city", "role": "supervisor", "department": CIVIL, "jurisdiction": "4406"},
    {"id": "sup-far", "role": "supervisor", "jurisdiction": "440606"},
    {"id": "admin", "role": "admin"},
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    state = tmp_path_factory.mktemp("escalation")
    creds = state / "credentials.yaml"
    entries = [{**p, "token_sha256": hash_token(f"token-{p['id']}")} for p in [*PRINCIPALS, *HEADS]]
    creds.write_text(yaml.safe_dump({"principals": entries}, allow_unicode=True), "utf-8")
    settings = Settings(
        listen="127.0.0.1:0", rulesets=RULESETS, state_dir=state, credentials=creds,
        rate_per_second=0, watch_seconds=0, alert_interval_seconds=0,
    )  # fmt: skip
    running = LiveServer(settings, auth=True)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stubs(server: LiveServer) -> Iterator[tuple[Any, Any]]:
    with grpc.insecure_channel(server.target) as ch:
        yield pb_grpc.ApprovalServiceStub(ch), rpb_grpc.ReviewServiceStub(ch)


def get(review: Any, decision_id: str) -> Any:
    return review.GetTask(rpb.GetTaskRequest(decision_id=decision_id), metadata=md("sup")).task


def trail_verifies(server: LiveServer) -> None:
    db = server.running.store.path
    pem = db.parent / "seal.pub.pem"
    pem.write_text(server.running.store.sealer.public_pem, "utf-8")
    assert main(["audit", "verify", "--db", str(db), "--key", str(pem)]) == 0


class TestEscalation:
    def test_a_supervisor_escalates_and_the_assignee_and_head_are_alerted(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        review.ClaimTask(rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md("rev-civil"))
        escalate = rpb.EscalateTaskRequest(decision_id=decision_id, note="  ")
        assert violations(lambda: review.EscalateTask(escalate, metadata=md("sup"))) == {
            "note": "必填：督办意见"
        }
        escalate.note = "群众反映久拖未办，请三日内办结并反馈"
        for who in ("rev-civil", "win"):  # not a supervisor's RPC
            assert code_of(lambda w=who: review.EscalateTask(escalate, metadata=md(w)))[0] == (
                grpc.StatusCode.PERMISSION_DENIED
            )
        assert code_of(lambda: review.EscalateTask(escalate, metadata=md("sup-far")))[0] == (
            grpc.StatusCode.PERMISSION_DENIED
        )  # another jurisdiction
        done = review.EscalateTask(escalate, metadata=md("sup"))
        assert done.task.state == "claimed" and done.task.escalations == 1
        assert done.task.HasField("last_escalated_at") and done.alert_seq > 0
        assert get(review, decision_id).escalations == 1

        alerts = [
            r.alert
            for r in review.WatchAlerts(rpb.WatchAlertsRequest(after_seq=0), metadata=md("sup"))
            if r.alert.decision_id == decision_id
        ]
        assert [(a.seq, a.kind) for a in alerts] == [(done.alert_seq, "escalated")]
        assert list(alerts[0].recipients) == ["rev-civil", "head-civil"]
        assert alerts[0].note == escalate.note and alerts[0].due_date == done.task.promised_due_date

        again = review.EscalateTask(
            rpb.EscalateTaskRequest(decision_id=decision_id, note="再次督办"), metadata=md("admin")
        )
        assert (
            again.task.escalations == 2 and again.alert_seq > done.alert_seq
        )  # one per escalation

        body = json.loads(
            sqlite3.connect(server.running.store.path)
            .execute("SELECT body FROM records WHERE seq = ?", (done.seq,))
            .fetchone()[0]
        )["transition"]
        assert (body["action"], body["from"], body["to"], body["by"]) == (
            "escalate", "claimed", "claimed", "sup",
        )  # fmt: skip
        assert body["decision_id"] == decision_id and body["note"] == escalate.note
        assert body["notify"] == ["rev-civil", "head-civil"]
        trail_verifies(server)

    def test_an_open_task_alerts_the_head_only_and_is_listed_as_escalated(
        self, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        quiet, loud = review_case(approval), review_case(approval)
        done = review.EscalateTask(
            rpb.EscalateTaskRequest(decision_id=loud, note="请加快办理"), metadata=md("sup")
        )
        alert = next(
            r.alert
            for r in review.WatchAlerts(
                rpb.WatchAlertsRequest(after_seq=done.alert_seq - 1), metadata=md("sup")
            )
        )
        assert list(alert.recipients) == ["head-civil"]  # unclaimed: nobody else to tell
        listed = review.ListTasks(rpb.ListTasksRequest(escalated_only=True), metadata=md("sup"))
        ids = {t.decision_id for t in listed.tasks}
        assert loud in ids and quiet not in ids
        assert all(t.escalations > 0 for t in listed.tasks)

    def test_a_final_task_cannot_be_escalated(self, stubs: tuple[Any, Any]) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        review.WithdrawCase(
            rpb.WithdrawCaseRequest(decision_id=decision_id, reason="申请人撤回"),
            metadata=md("win"),
        )
        code, text = code_of(
            lambda: review.EscalateTask(
                rpb.EscalateTaskRequest(decision_id=decision_id, note="督办"), metadata=md("sup")
            )
        )
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "任务已结束" in text

    def test_command_line(self, server: LiveServer, stubs: tuple[Any, Any]) -> None:
        decision_id = review_case(stubs[0])
        code, _, err = cli(server.target, "sup", "review", "escalate", decision_id, "--note", "")
        assert code == 2 and "note: 必填：督办意见" in err
        code, out, _ = cli(
            server.target, "sup", "review", "escalate", decision_id, "--note", "请今日反馈"
        )
        assert code == 0 and "ESCALATED x1" in out
        code, out, _ = cli(server.target, "sup", "review", "list", "--escalated")
        assert code == 0 and decision_id in out
        code, out, _ = cli(server.target, "sup", "alerts")  # a streaming call with a token
        line = next(x for x in out.splitlines() if decision_id in x and "ESCALATED" in x)
        assert "to head-civil" in line and "「请今日反馈」" in line


def backdate(db: Path, decision_id: str, opened: str, paused_from: str = "") -> None:
    """Days pass while the server runs: the task was opened (and its pause began) earlier."""
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        row = conn.execute("SELECT task FROM tasks WHERE decision_id = ?", (decision_id,))
        task = json.loads(row.fetchone()[0])
        task["opened_at"] = opened
        if paused_from:
            task["pauses"][-1]["started_on"] = paused_from
        conn.execute(
            "UPDATE tasks SET opened_at = ?, task = ? WHERE decision_id = ?",
            (opened, json.dumps(task, ensure_ascii=False), decision_id),
        )


def working_days_back(n: int) -> str:
    """The date n working days before today (Asia/Shanghai)."""
    day, left = shanghai_today(), n
    while left:
        day -= dt.timedelta(days=1)
        left -= is_working_day(day)[0]
    return day.isoformat()


class TestSuspendResume:
    def test_the_assignee_suspends_a_supervisor_resumes_and_the_due_dates_move(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        review.ClaimTask(rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md("rev-civil"))
        suspend = rpb.SuspendTaskRequest(decision_id=decision_id, reason="vacation")
        bad = violations(lambda: review.SuspendTask(suspend, metadata=md("rev-civil")))
        assert list(bad) == ["reason"] and "expert_review" in bad["reason"]
        suspend.reason, suspend.note = "expert_review", "委托三名专家评审"
        code, text = code_of(lambda: review.SuspendTask(suspend, metadata=md("rev-civil-2")))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "只有认领人" in text
        assert code_of(lambda: review.SuspendTask(suspend, metadata=md("win")))[0] == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        before = get(review, decision_id)
        suspended = review.SuspendTask(suspend, metadata=md("rev-civil")).task
        assert suspended.state == "suspended" and suspended.pauses[-1].kind == "art45"
        assert suspended.pauses[-1].reason == "expert_review" and not suspended.pauses[-1].ended_on

        # Four working days pass while the experts review it.
        opened = f"{working_days_back(6)}T02:00:00.000000Z"
        backdate(server.running.store.path, decision_id, opened, working_days_back(4))
        resumed = review.ResumeTask(
            rpb.ResumeTaskRequest(decision_id=decision_id, note="专家意见已收到"),
            metadata=md("sup"),
        )  # a supervisor may restart the clock of a task another claimed
        task = resumed.task
        assert task.state == "claimed" and task.assignee == "rev-civil"
        assert task.pauses[-1].ended_on == shanghai_today().isoformat()
        assert task.paused_working_days == 4
        # The promised limit in working days, from the due date it had before: the due date
        # now counts it from the backdated opening, plus exactly the 4 working days paused.
        first_day = before.opened_at.ToDatetime(tzinfo=dt.UTC).astimezone(SHANGHAI).date()
        limit = working_days_between(first_day, dt.date.fromisoformat(before.promised_due_date))
        opened_on = dt.date.fromisoformat(opened[:10])
        moved = add_working_days(opened_on, limit + 4).date
        assert task.promised_due_date == moved.isoformat()
        assert task.used_working_days == 6 - 4
        t = "json_extract(body, '$.transition.{}')".format
        rows = (
            sqlite3.connect(server.running.store.path)
            .execute(
                f"SELECT {t('action')}, {t('by')}, {t('reason')}, {t('note')} FROM records"
                f" WHERE kind = 'transition' AND {t('decision_id')} = ? ORDER BY seq",
                (decision_id,),
            )
            .fetchall()
        )
        assert rows[1:] == [
            ("suspend", "rev-civil", "expert_review", "委托三名专家评审"),
            ("resume", "sup", None, "专家意见已收到"),
        ]
        trail_verifies(server)


class TestPaging:
    def test_pages_cover_every_task_once_in_a_stable_order(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        mine = [review_case(approval) for _ in range(7)]
        # Two tasks opened in the same microsecond: the decision id orders them.
        with contextlib.closing(sqlite3.connect(server.running.store.path)) as conn, conn:
            when = conn.execute(
                "SELECT opened_at FROM tasks WHERE decision_id = ?", (mine[3],)
            ).fetchone()[0]
            conn.execute("UPDATE tasks SET opened_at = ? WHERE decision_id = ?", (when, mine[4]))
        seen: list[str] = []
        token, pages = "", 0
        while True:
            resp = review.ListTasks(
                rpb.ListTasksRequest(states=["open"], page_size=3, page_token=token),
                metadata=md("sup"),
            )
            assert len(resp.tasks) <= 3
            seen += [t.decision_id for t in resp.tasks]
            pages += 1
            token = resp.next_page_token
            if not token:
                break
        everything = review.ListTasks(
            rpb.ListTasksRequest(states=["open"], page_size=500), metadata=md("sup")
        )
        assert seen == [t.decision_id for t in everything.tasks]  # same order, no repeats
        assert set(mine) <= set(seen) and len(set(seen)) == len(seen)
        assert pages == -(-len(seen) // 3)  # the last page says it is the last
        assert not everything.next_page_token

    def test_a_bad_page_token_is_named(self, stubs: tuple[Any, Any]) -> None:
        _, review = stubs
        for token in ("nope!", "W10=", "x" * 300):
            bad = violations(
                lambda t=token: review.ListTasks(
                    rpb.ListTasksRequest(page_token=t, page_size=-1), metadata=md("sup")
                )
            )
            assert set(bad) == {"page_token", "page_size"}

    def test_the_command_line_follows_pages(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        review_case(stubs[0])
        everything = stubs[1].ListTasks(rpb.ListTasksRequest(page_size=500), metadata=md("sup"))
        code, out, _ = cli(server.target, "sup", "review", "list", "--page-size", "2")
        assert code == 0 and len(everything.tasks) > 2
        assert [line.split()[0] for line in out.splitlines()] == [
            t.decision_id for t in everything.tasks
        ]
        code, out, _ = cli(
            server.target, "sup", "review", "list", "--page-size", "2", "--limit", "3"
        )
        assert code == 0 and len(out.splitlines()) == 3
