"""The review queue on a real server: decisions open casework in their commit, reviewers see
and act on their department's tasks within their jurisdiction only, overrides need a
justification, every transition is on the verified trail, and two server processes on one
store never both win a claim."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi.v1 import review_pb2 as rpb
from miaopi.v1 import review_pb2_grpc as rpb_grpc
from miaopi_server.clock import SHANGHAI
from miaopi_server.decision.workdays import add_working_days
from miaopi_server.settings import Settings
from tests.casework_support import (
    CIVIL,
    cli,
    code_of,
    md,
    review_case,
    violations,
    write_credentials,
)
from tests.conftest import LiveServer, ServerProcess
from tests.support import (
    BUSINESS,
    BUSINESS_MATERIALS,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    decide_request,
    with_facts,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    state = tmp_path_factory.mktemp("review")
    settings = Settings(
        listen="127.0.0.1:0",
        rulesets=RULESETS,
        state_dir=state,
        credentials=write_credentials(state / "credentials.yaml"),
        rate_per_second=0,
        watch_seconds=0,
    )
    running = LiveServer(settings, auth=True)
    yield running
    running.stop()


class TestOpening:
    def test_an_approval_closes_at_once(self, stubs: tuple[Any, Any]) -> None:
        approval, review = stubs
        d = approval.Decide(
            decide_request("GF00012000", SENIOR, SENIOR_MATERIALS), metadata=md("win")
        ).decision
        assert d.outcome == pb.OUTCOME_APPROVE
        task = review.GetTask(rpb.GetTaskRequest(decision_id=d.decision_id), metadata=md("win"))
        assert (task.task.kind, task.task.state) == ("instant", "closed")
        assert task.task.last_seq == d.receipt.seq  # the decision's record is the whole case
        assert task.task.department == CIVIL and task.task.jurisdiction == "440605"
        claim = rpb.ClaimTaskRequest(decision_id=d.decision_id)
        code, text = code_of(lambda: review.ClaimTask(claim, metadata=md("rev-civil")))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "规则已即时办结" in text

    def test_manual_review_opens_a_task_for_the_department_in_its_jurisdiction(
        self, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        task = review.GetTask(rpb.GetTaskRequest(decision_id=decision_id), metadata=md("win")).task
        assert (task.kind, task.state, task.department) == ("review", "open", CIVIL)
        assert task.jurisdiction == "440605" and task.window_id == "W-GC-01"
        assert task.rules_verdict == pb.OUTCOME_APPROVE and task.promised_due_date
        assert task.warning == ""

        def listed(who: str) -> set[str]:
            resp = review.ListTasks(rpb.ListTasksRequest(), metadata=md(who))
            return {t.decision_id for t in resp.tasks}

        assert decision_id in listed("rev-civil") and decision_id in listed("rev-civil-2")
        assert decision_id in listed("sup")
        assert decision_id not in listed("rev-market")  # another department
        assert decision_id not in listed("rev-civil-far")  # another jurisdiction
        req = rpb.GetTaskRequest(decision_id=decision_id)
        claim = rpb.ClaimTaskRequest(decision_id=decision_id)
        for who in ("rev-market", "rev-civil-far", "win2"):
            assert code_of(lambda w=who: review.GetTask(req, metadata=md(w)))[0] == (
                grpc.StatusCode.PERMISSION_DENIED
            )
            assert code_of(lambda w=who: review.ClaimTask(claim, metadata=md(w)))[0] == (
                grpc.StatusCode.PERMISSION_DENIED
            )

    def test_a_reviewer_sees_the_decisions_of_its_grant_only(self, stubs: tuple[Any, Any]) -> None:
        """GetDecision (the facts of the case) for a reviewer: the decisions whose task is in
        its department and jurisdiction, no others; a case closed at once by the rules belongs
        to its item's department too."""
        approval, _ = stubs
        decision_id = review_case(approval)
        get = pb.GetDecisionRequest(decision_id=decision_id)
        assert approval.GetDecision(get, metadata=md("rev-civil")).decision.decision_id
        for who in ("rev-market", "rev-civil-far"):
            assert code_of(lambda w=who: approval.GetDecision(get, metadata=md(w)))[0] == (
                grpc.StatusCode.PERMISSION_DENIED
            )
        assert approval.GetDecision(get, metadata=md("sup")).decision.decision_id

    def test_approval_with_deferred_material_opens_a_supplement_task(
        self, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        facts = with_facts(
            BUSINESS, business__composition="family", business__family_members=["黄明"]
        )
        d = approval.Decide(
            decide_request("XK00051000", facts, BUSINESS_MATERIALS), metadata=md("win")
        ).decision
        assert d.outcome == pb.OUTCOME_APPROVE
        task = review.GetTask(
            rpb.GetTaskRequest(decision_id=d.decision_id), metadata=md("win")
        ).task
        assert (task.kind, task.state) == ("supplement", "supplement_pending")
        assert list(task.pending_materials) == ["family_relationship_proof"]
        opened = task.opened_at.ToDatetime(tzinfo=dt.UTC).astimezone(SHANGHAI).date()
        # the item's rule file gives no supplement_working_days: the default, 5
        assert task.supplement_due_date == add_working_days(opened, 5).date.isoformat()
        bad = violations(
            lambda: review.SupplyMaterials(
                rpb.SupplyMaterialsRequest(decision_id=d.decision_id, materials=["x"]),
                metadata=md("win"),
            )
        )
        assert "family_relationship_proof" in bad["materials"]
        done = review.SupplyMaterials(
            rpb.SupplyMaterialsRequest(
                decision_id=d.decision_id, materials=["family_relationship_proof"]
            ),
            metadata=md("win"),
        )
        assert done.task.state == "supplemented" and done.seq > d.receipt.seq


class TestReview:
    def test_claim_decide_with_override_justification(self, stubs: tuple[Any, Any]) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        claim = rpb.ClaimTaskRequest(decision_id=decision_id)
        claimed = review.ClaimTask(claim, metadata=md("rev-civil"))
        assert claimed.task.state == "claimed" and claimed.task.assignee == "rev-civil"
        assert (
            claimed.task.HasField("claim_expires_at") and claimed.tree_head.tree_size >= claimed.seq
        )
        code, text = code_of(lambda: review.ClaimTask(claim, metadata=md("rev-civil-2")))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "已由 rev-civil 认领" in text
        reject = rpb.DecideTaskRequest(
            decision_id=decision_id,
            outcome=pb.OUTCOME_REJECT,
            reasons=["户籍核查不符"],
            legal_basis=["南海区高龄老人津贴发放办法 第三条"],
        )
        assert code_of(lambda: review.DecideTask(reject, metadata=md("rev-civil-2")))[0] == (
            grpc.StatusCode.FAILED_PRECONDITION
        )  # not the assignee
        bad = violations(lambda: review.DecideTask(reject, metadata=md("rev-civil")))
        assert list(bad) == ["justification"] and "规则结论为 APPROVE" in bad["justification"]
        reject.justification = "现场核查：申请人户籍已迁出"
        decided = review.DecideTask(reject, metadata=md("rev-civil"))
        assert decided.task.state == "decided" and decided.task.overridden
        assert decided.task.outcome == pb.OUTCOME_REJECT
        again = code_of(lambda: review.ClaimTask(claim, metadata=md("rev-civil")))
        assert again[0] == grpc.StatusCode.FAILED_PRECONDITION and "任务已结束" in again[1]

    def test_supplement_request_pauses_and_requeues(self, stubs: tuple[Any, Any]) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        review.ClaimTask(rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md("rev-civil"))
        ask = rpb.RequestSupplementRequest(
            decision_id=decision_id, materials=["hukou_book"], note="户口簿页面不清"
        )
        waiting = review.RequestSupplement(ask, metadata=md("rev-civil")).task
        assert waiting.state == "awaiting_supplement" and waiting.pauses[0].kind == "supplement"
        supply = rpb.SupplyMaterialsRequest(decision_id=decision_id, materials=["hukou_book"])
        assert code_of(lambda: review.SupplyMaterials(supply, metadata=md("win2")))[0] == (
            grpc.StatusCode.PERMISSION_DENIED
        )  # another window's case
        back = review.SupplyMaterials(supply, metadata=md("win")).task
        assert back.state == "open" and back.pauses[0].ended_on
        withdraw = rpb.WithdrawCaseRequest(decision_id=decision_id)
        assert "note" in violations(lambda: review.WithdrawCase(withdraw, metadata=md("win")))
        withdraw.reason = "申请人撤回申请"
        assert review.WithdrawCase(withdraw, metadata=md("win")).task.state == "withdrawn"

    def test_roles(self, stubs: tuple[Any, Any]) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        claim = rpb.ClaimTaskRequest(decision_id=decision_id)
        for who in ("win", "sup"):
            assert code_of(lambda w=who: review.ClaimTask(claim, metadata=md(w)))[0] == (
                grpc.StatusCode.PERMISSION_DENIED
            )
        assert (
            code_of(lambda: review.ListTasks(rpb.ListTasksRequest(), metadata=md("win")))[0]
            == grpc.StatusCode.PERMISSION_DENIED
        )
        bad = violations(
            lambda: review.ListTasks(
                rpb.ListTasksRequest(states=["nope"], page_size=9999), metadata=md("rev-civil")
            )
        )
        assert set(bad) == {"states", "page_size"}
        missing = code_of(
            lambda: review.GetTask(rpb.GetTaskRequest(decision_id="nope"), metadata=md("sup"))
        )
        assert missing[0] == grpc.StatusCode.NOT_FOUND

    def test_the_whole_trail_verifies(self, server: LiveServer, stubs: tuple[Any, Any]) -> None:
        from miaopi_client.cli import main

        review_case(stubs[0])
        db = server.running.store.path
        kinds = dict(
            sqlite3.connect(db).execute("SELECT kind, COUNT(*) FROM records GROUP BY kind")
        )
        assert kinds["transition"] >= 1 and kinds["decision"] >= 1
        pem = db.parent / "seal.pub.pem"
        pem.write_text(server.running.store.sealer.public_pem, "utf-8")
        assert main(["audit", "verify", "--db", str(db), "--key", str(pem)]) == 0

    def test_a_changed_transition_is_caught(self, server: LiveServer, tmp_path: Path) -> None:
        from miaopi_server.audit.sqlite_verify import verify_database

        copy = tmp_path / "copy.sqlite3"
        with sqlite3.connect(copy) as dst:
            sqlite3.connect(server.running.store.path).backup(dst)
        keys = server.running.store.keys
        (seq,) = (
            sqlite3.connect(copy)
            .execute("SELECT MIN(seq) FROM records WHERE kind = 'transition'")
            .fetchone()
        )
        with sqlite3.connect(copy) as conn:
            conn.execute("UPDATE records SET item_code = 'X' WHERE seq = ?", (seq,))
        found = verify_database(copy, keys)
        assert (found.ok, found.first_bad_seq) == (False, seq)
        assert found.reason == "indexed columns disagree with the record"
        with sqlite3.connect(copy) as conn:
            conn.execute(
                'UPDATE records SET body = replace(body, \'"by":"\', \'"by":"x\'),'
                " item_code = 'GF00012000' WHERE seq = ?",
                (seq,),
            )
        assert verify_database(copy, keys).reason == "hash mismatch"


class TestOddInput:
    """What a caller may put in a ReviewService request that no reviewer writes: each is the
    request's INVALID_ARGUMENT naming the field, never INTERNAL, and nothing is recorded."""

    def test_control_characters_in_an_actions_text_are_refused_field_by_field(
        self, stubs: tuple[Any, Any]
    ) -> None:
        """A NUL was recorded as written on SQLite; on PostgreSQL it was "audit unavailable"
        (escalations, ratings) or, in a supplement request's materials, recorded and then
        made every GetKpis of the month fail (tests/test_postgres_nodes.py)."""
        approval, review = stubs
        decision_id = review_case(approval)
        review.ClaimTask(rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md("rev-civil"))
        ask = rpb.RequestSupplementRequest(
            decision_id=decision_id, materials=["hukou_book", "照片\x00"], note="请补\x1b[31m"
        )
        bad = violations(lambda: review.RequestSupplement(ask, metadata=md("rev-civil")))
        assert bad == {"materials[1]": "含有控制字符", "note": "含有控制字符"}
        decide = rpb.DecideTaskRequest(
            decision_id=decision_id, outcome=pb.OUTCOME_REJECT, reasons=["不符\x00"],
            legal_basis=["第三条\x7f"], justification="核查\x00",
        )  # fmt: skip
        bad = violations(lambda: review.DecideTask(decide, metadata=md("rev-civil")))
        assert set(bad) == {"reasons[0]", "legal_basis[0]", "justification"}
        escalate = rpb.EscalateTaskRequest(decision_id=decision_id, note="\x00")
        assert violations(lambda: review.EscalateTask(escalate, metadata=md("sup"))) == {
            "note": "含有控制字符"
        }
        # tabs and line breaks are text: a justification is written in a text box
        decide = rpb.DecideTaskRequest(
            decision_id=decision_id, outcome=pb.OUTCOME_REJECT, reasons=["户籍\t核查\r\n不符"],
            legal_basis=["第三条"], justification="现场核查：\n户籍已迁出",
        )  # fmt: skip
        decided = review.DecideTask(decide, metadata=md("rev-civil")).task
        assert decided.state == "decided"
        rate = rpb.RateCaseRequest(decision_id=decision_id, score=4, comment="好\x00")
        assert violations(lambda: review.RateCase(rate, metadata=md("win"))) == {
            "comment": "含有控制字符"
        }
        task = review.GetTask(rpb.GetTaskRequest(decision_id=decision_id), metadata=md("sup")).task
        assert task.escalations == 0 and task.last_seq == decided.last_seq  # nothing recorded

    def test_a_decision_id_that_no_decision_has_is_named(self, stubs: tuple[Any, Any]) -> None:
        """A NUL made PostgreSQL refuse the lookup, answered UNAVAILABLE ("audit unavailable")
        and logged as a crash."""
        approval, review = stubs
        for odd in ("a\x00b", "\u202eid", " id", "x" * 129):
            get = rpb.GetTaskRequest(decision_id=odd)
            assert set(violations(lambda g=get: review.GetTask(g, metadata=md("sup")))) == {
                "decision_id"
            }
            claim = rpb.ClaimTaskRequest(decision_id=odd)
            assert set(
                violations(lambda c=claim: review.ClaimTask(c, metadata=md("rev-civil")))
            ) == {"decision_id"}
            got = pb.GetDecisionRequest(decision_id=odd)
            assert set(violations(lambda g=got: approval.GetDecision(g, metadata=md("sup")))) == {
                "decision_id"
            }

    def test_forged_page_tokens_and_item_filters(self, stubs: tuple[Any, Any]) -> None:
        """A token whose decision id is a lone surrogate ("\\ud800" in its JSON) was INTERNAL
        (the store could not encode it); an item filter with a NUL "audit unavailable" on
        PostgreSQL."""
        import base64

        _, review = stubs
        for key in (b'["2026-01-01T00:00:00", "\\ud800"]', b'["2026-01-01T00:00:00", "\\u0000"]'):
            token = base64.urlsafe_b64encode(key).decode()
            ask = rpb.ListTasksRequest(page_token=token)
            assert set(violations(lambda a=ask: review.ListTasks(a, metadata=md("sup")))) == {
                "page_token"
            }
        ask = rpb.ListTasksRequest(item_code="GF\x00", page_size=-1)
        bad = violations(lambda: review.ListTasks(ask, metadata=md("sup")))
        assert set(bad) == {"item_code", "page_size"}

    def test_an_outcome_the_server_has_no_name_for(self, stubs: tuple[Any, Any]) -> None:
        """proto3 enums are open: outcome 99 reached pb.Outcome.Name, a ValueError, INTERNAL.
        Now the rule book refuses it with the request's other problems."""
        approval, review = stubs
        decision_id = review_case(approval)
        review.ClaimTask(rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md("rev-civil"))
        decide = rpb.DecideTaskRequest(decision_id=decision_id, outcome=99)  # type: ignore[arg-type]
        bad = violations(lambda: review.DecideTask(decide, metadata=md("rev-civil")))
        assert set(bad) == {"outcome", "reasons", "justification"}  # the verdict was APPROVE
        assert bad["outcome"] == "人工决定须为 APPROVE 或 REJECT"

    def test_kpi_months_a_calendar_cannot_hold(self, stubs: tuple[Any, Any]) -> None:
        """0001-01 starts before UTC can say (OverflowError: INTERNAL); full-width digits were
        read as 2026-11 and answered under the month as sent."""
        _, review = stubs
        for month in ("0001-01", "9999-12", "２０２６-11", "2026-13", "2026-00"):
            ask = rpb.GetKpisRequest(month=month)
            assert set(violations(lambda a=ask: review.GetKpis(a, metadata=md("sup")))) == {
                "month"
            }, month
        assert review.GetKpis(rpb.GetKpisRequest(month="0001-02"), metadata=md("sup")).month


class TestConcurrentClaims:
    def test_two_processes_one_winner(self, tmp_path: Path) -> None:
        """Two server processes on one store; each of ten tasks is claimed through both at
        once by different reviewers: exactly one claim of each succeeds."""
        creds = write_credentials(tmp_path / "credentials.yaml")
        extra = ("--credentials", str(creds), "--watch", "0")
        one = ServerProcessAuth(RULESETS, tmp_path, *extra)
        two = ServerProcessAuth(RULESETS, tmp_path, *extra)
        try:
            with grpc.insecure_channel(one.target) as c1, grpc.insecure_channel(two.target) as c2:
                approval = pb_grpc.ApprovalServiceStub(c1)
                stubs = [rpb_grpc.ReviewServiceStub(c1), rpb_grpc.ReviewServiceStub(c2)]
                ids = [review_case(approval) for _ in range(10)]

                def claim(args: tuple[int, str]) -> str:
                    side, decision_id = args
                    who = ("rev-civil", "rev-civil-2")[side]
                    try:
                        stubs[side].ClaimTask(
                            rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md(who)
                        )
                        return who
                    except grpc.RpcError as exc:
                        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
                        return ""

                with concurrent.futures.ThreadPoolExecutor(20) as pool:
                    results = list(pool.map(claim, [(s, d) for d in ids for s in (0, 1)]))
                for i, decision_id in enumerate(ids):
                    winners = [w for w in results[2 * i : 2 * i + 2] if w]
                    assert len(winners) == 1
                    task = (
                        stubs[0]
                        .GetTask(rpb.GetTaskRequest(decision_id=decision_id), metadata=md("sup"))
                        .task
                    )
                    assert task.assignee == winners[0]
        finally:
            for p in (one, two):
                p.signal(15)
                p.wait()


class ServerProcessAuth(ServerProcess):
    """ServerProcess with authentication on (its --insecure-no-auth dropped)."""

    def __init__(self, rulesets: Any, state_dir: Any, *extra: str) -> None:
        import subprocess

        original = subprocess.Popen

        def popen(argv: list[str], **kw: Any) -> Any:
            return original([a for a in argv if a != "--insecure-no-auth"], **kw)

        subprocess.Popen = popen  # type: ignore[assignment,misc]
        try:
            super().__init__(rulesets, state_dir, *extra)
        finally:
            subprocess.Popen = original  # type: ignore[misc]


class TestCommandLine:
    def test_review_list_claim_decide(self, server: LiveServer, stubs: tuple[Any, Any]) -> None:
        decision_id = review_case(stubs[0])
        code, out, _ = cli(server.target, "rev-civil", "review", "list")
        assert code == 0 and decision_id in out and "open  review  GF00012000" in out
        code, out, _ = cli(server.target, "rev-market", "review", "list")
        assert code == 0 and decision_id not in out
        code, out, _ = cli(server.target, "rev-civil", "review", "claim", decision_id)
        assert code == 0 and "claimed" in out and "by rev-civil" in out
        code, _, err = cli(server.target, "rev-civil-2", "review", "claim", decision_id)
        assert code == 1 and "FAILED_PRECONDITION" in err and "已由 rev-civil 认领" in err
        decide = ("review", "decide", decision_id, "--outcome", "REJECT", "--reason",
                  "户籍已迁出", "--basis", "南海区高龄老人津贴发放办法 第三条")  # fmt: skip
        code, _, err = cli(server.target, "rev-civil", *decide)
        assert code == 2 and "justification: 规则结论为 APPROVE" in err
        code, out, _ = cli(server.target, "rev-civil", *decide, "--justification", "核查属实")
        assert code == 0 and "decided" in out and "OVERRIDDEN" in out
        code, out, _ = cli(server.target, "sup", "review", "show", decision_id, "--json")
        assert code == 0 and '"overridden": true' in out and '"outcome": "OUTCOME_REJECT"' in out

    def test_supplement_supply_withdraw(self, server: LiveServer, stubs: tuple[Any, Any]) -> None:
        decision_id = review_case(stubs[0])
        assert cli(server.target, "rev-civil", "review", "claim", decision_id)[0] == 0
        code, out, _ = cli(server.target, "rev-civil", "review", "supplement", decision_id,
                           "--material", "hukou_book", "--note", "页面不清")  # fmt: skip
        assert code == 0 and "awaiting_supplement" in out
        code, out, _ = cli(server.target, "win", "review", "supply", decision_id,
                           "--material", "hukou_book")  # fmt: skip
        assert code == 0 and f"{decision_id}  open" in out
        code, out, _ = cli(server.target, "win", "review", "withdraw", decision_id,
                           "--reason", "申请人撤回")  # fmt: skip
        assert code == 0 and "withdrawn" in out
