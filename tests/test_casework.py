"""The casework domain, pure: every transition of the task state machine (legal and illegal),
who may act, what an action must carry, overrides, and working-day deadlines with pauses."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from miaopi_server.casework import states as s
from miaopi_server.casework.deadlines import (
    DUE_SOON,
    ON_TIME,
    OVERDUE_PROMISED,
    OVERDUE_STATUTORY,
    Pause,
    deadlines,
    working_days_between,
)
from miaopi_server.casework.model import MAX_ITEMS, MAX_TEXT, Action, Task, act, supplement_due
from miaopi_server.casework.opening import kind_of, rules_verdict
from miaopi_server.decision.decide import Decision, Reason
from miaopi_server.errors import CaseInvalid
from miaopi_server.rules.model import Material

IDLE = dt.timedelta(minutes=30)
# 2026-11-23 is a Monday; times are UTC (08:00 Shanghai = 00:00 UTC).
T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


def task(kind: str = s.REVIEW, state: str | None = None, **kw: object) -> Task:
    base = Task(
        decision_id="d-1",
        kind=kind,
        state=state or s.initial_state(kind),
        item_code="GF00012000",
        department="南海区民政局",
        jurisdiction="440605",
        window_id="W1",
        opened_at=T0,
        promised_days=5,
        statutory_days=20,
        supplement_days=5,
        rules_outcome="MANUAL_REVIEW",
        rules_verdict="",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def do(t: Task, action: str, by: str = "r1", minutes: int = 1, **kw: object) -> Task:
    a = Action(action, by, T0 + dt.timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]
    return act(t, a, IDLE)[0]


DECIDE_OK = {"outcome": "APPROVE", "reasons": ("材料齐全，符合条件",)}


class TestStateMachine:
    LEGAL = (
        [
            (s.REVIEW, s.OPEN, s.CLAIM, s.CLAIMED),
            (s.REVIEW, s.CLAIMED, s.RELEASE, s.OPEN),
            (s.REVIEW, s.CLAIMED, s.DECIDE, s.DECIDED),
            (s.REVIEW, s.CLAIMED, s.REQUEST_SUPPLEMENT, s.AWAITING_SUPPLEMENT),
            (s.REVIEW, s.AWAITING_SUPPLEMENT, s.SUPPLY, s.OPEN),
            (s.REVIEW, s.CLAIMED, s.SUSPEND, s.SUSPENDED),
            (s.REVIEW, s.SUSPENDED, s.RESUME, s.CLAIMED),
            (s.SUPPLEMENT, s.SUPPLEMENT_PENDING, s.SUPPLY, s.SUPPLEMENTED),
            (s.SUPPLEMENT, s.SUPPLEMENT_PENDING, s.LAPSE, s.LAPSED),
        ]
        + [
            (kind, state, s.ESCALATE, state)  # 督办 marks the task, its state stays
            for kind, state in [
                (s.REVIEW, s.OPEN),
                (s.REVIEW, s.CLAIMED),
                (s.REVIEW, s.AWAITING_SUPPLEMENT),
                (s.REVIEW, s.SUSPENDED),
                (s.SUPPLEMENT, s.SUPPLEMENT_PENDING),
            ]
        ]
        + [
            (kind, state, s.WITHDRAW, s.WITHDRAWN)
            for kind, state in [
                (s.REVIEW, s.OPEN),
                (s.REVIEW, s.CLAIMED),
                (s.REVIEW, s.AWAITING_SUPPLEMENT),
                (s.REVIEW, s.SUSPENDED),
                (s.SUPPLEMENT, s.SUPPLEMENT_PENDING),
            ]
        ]
    )

    @pytest.mark.parametrize(("kind", "state", "action", "target"), LEGAL)
    def test_legal(self, kind: str, state: str, action: str, target: str) -> None:
        assert s.next_state(kind, state, action) == target

    def test_every_other_combination_is_refused(self) -> None:
        legal = {(k, st, a) for k, st, a, _ in self.LEGAL}
        refused = 0
        all_states = [
            s.OPEN,
            s.CLAIMED,
            s.AWAITING_SUPPLEMENT,
            s.SUSPENDED,
            s.DECIDED,
            s.SUPPLEMENT_PENDING,
            s.SUPPLEMENTED,
            s.LAPSED,
            s.WITHDRAWN,
            s.CLOSED,
        ]
        for kind in (s.REVIEW, s.SUPPLEMENT, s.INSTANT):
            for state in all_states:
                for action in s.ACTIONS:
                    if (kind, state, action) in legal or (
                        kind == s.REVIEW and (state, action) == (s.CLAIMED, s.CLAIM)
                    ):
                        continue
                    with pytest.raises(s.IllegalTransition) as err:
                        s.next_state(kind, state, action)
                    assert action in str(err.value) and state in str(err.value)
                    refused += 1
        assert refused == 3 * 10 * len(s.ACTIONS) - len(legal) - 1

    def test_final_states_say_so_and_unknown_actions_are_refused(self) -> None:
        with pytest.raises(s.IllegalTransition, match="任务已结束"):
            s.next_state(s.REVIEW, s.DECIDED, s.WITHDRAW)
        with pytest.raises(s.IllegalTransition, match="未知的操作"):
            s.next_state(s.REVIEW, s.OPEN, "approve")


class TestClaims:
    def test_claim_then_another_reviewer_is_refused_until_the_claim_expires(self) -> None:
        claimed = do(task(), s.CLAIM, "r1")
        assert (claimed.state, claimed.assignee) == (s.CLAIMED, "r1")
        with pytest.raises(s.IllegalTransition, match="已由 r1 认领"):
            do(claimed, s.CLAIM, "r2", minutes=20)
        after, details = act(claimed, Action(s.CLAIM, "r2", T0 + dt.timedelta(minutes=31)), IDLE)
        assert after.assignee == "r2" and details == {"expired_claim_of": "r1"}

    def test_only_the_assignee_acts(self) -> None:
        claimed = do(task(), s.CLAIM, "r1")
        for action, kw in [
            (s.DECIDE, DECIDE_OK),
            (s.RELEASE, {}),
            (s.REQUEST_SUPPLEMENT, {"materials": ("x",)}),
        ]:
            with pytest.raises(s.IllegalTransition, match="只有认领人 r1"):
                do(claimed, action, "r2", **kw)

    def test_release_puts_it_back(self) -> None:
        released = do(do(task(), s.CLAIM), s.RELEASE)
        assert (released.state, released.assignee) == (s.OPEN, "")


class TestDecide:
    def test_decision_carries_outcome_reasons_and_basis(self) -> None:
        t = do(task(), s.CLAIM)
        after, details = act(
            t,
            Action(
                s.DECIDE,
                "r1",
                T0,
                outcome="REJECT",
                reasons=("户籍不在本区",),
                legal_basis=("南海区高龄老人津贴发放办法 第三条",),
            ),
            IDLE,
        )
        assert after.state == s.DECIDED and after.outcome == "REJECT" and not after.overridden
        assert details["reasons"] == ["户籍不在本区"]
        assert details["legal_basis"] == ["南海区高龄老人津贴发放办法 第三条"]

    def test_every_missing_part_at_once(self) -> None:
        t = do(task(), s.CLAIM)
        with pytest.raises(CaseInvalid) as err:
            do(t, s.DECIDE, outcome="REJECT")
        assert [v.field for v in err.value.violations] == ["reasons", "legal_basis"]
        with pytest.raises(CaseInvalid, match="outcome"):
            do(t, s.DECIDE, outcome="MANUAL_REVIEW", reasons=("x",))

    def test_lists_are_bounded_in_count_and_length_all_at_once(self) -> None:
        """Reasons, legal bases and materials go into the record and onto the notice: at
        most MAX_ITEMS each, every one at most MAX_TEXT long (before, only the request's
        size bounded them)."""
        t = do(task(), s.CLAIM)
        with pytest.raises(CaseInvalid) as err:
            do(t, s.DECIDE, outcome="REJECT", reasons=("理由",) * (MAX_ITEMS + 1),
               legal_basis=("依据", "条" * (MAX_TEXT + 1)))  # fmt: skip
        assert [v.field for v in err.value.violations] == ["reasons", "legal_basis[1]"]
        most = do(t, s.DECIDE, outcome="REJECT", reasons=("理由",) * MAX_ITEMS,
                  legal_basis=("条" * MAX_TEXT,))  # fmt: skip
        assert most.state == s.DECIDED

    def test_override_needs_a_justification_and_is_flagged(self) -> None:
        t = do(task(rules_verdict="APPROVE"), s.CLAIM)
        reject = {"outcome": "REJECT", "reasons": ("疑似冒领",), "legal_basis": ("办法 第五条",)}
        with pytest.raises(CaseInvalid) as err:
            do(t, s.DECIDE, **reject)
        assert [v.field for v in err.value.violations] == ["justification"]
        assert "规则结论为 APPROVE" in err.value.violations[0].description
        after, details = act(
            t,
            Action(s.DECIDE, "r1", T0, justification="现场核查发现证件不符", **reject),
            IDLE,  # type: ignore[arg-type]
        )
        assert after.overridden and details["overridden"] is True
        assert details["justification"] == "现场核查发现证件不符"
        same = do(t, s.DECIDE, **DECIDE_OK)  # agreeing with the rules needs none
        assert not same.overridden


class TestSupplementAndPauses:
    def test_reviewer_request_pauses_the_clock_until_supplied(self) -> None:
        t = do(task(), s.CLAIM)
        with pytest.raises(CaseInvalid, match="一次性告知"):
            do(t, s.REQUEST_SUPPLEMENT)
        waiting = do(
            t, s.REQUEST_SUPPLEMENT, materials=("household_register",), note="户口簿不清晰"
        )
        assert waiting.state == s.AWAITING_SUPPLEMENT and waiting.assignee == ""
        assert waiting.pauses == (Pause("supplement", "户口簿不清晰", dt.date(2026, 11, 23)),)
        with pytest.raises(CaseInvalid, match="尚缺材料：household_register"):
            do(waiting, s.SUPPLY, materials=("other",))
        later = Action(
            s.SUPPLY,
            "w1",
            dt.datetime(2026, 11, 26, 2, tzinfo=dt.UTC),
            materials=("household_register",),
        )
        back, details = act(waiting, later, IDLE)
        assert back.state == s.OPEN and back.pauses[0].ended_on == dt.date(2026, 11, 26)
        assert details["materials"] == ["household_register"]

    def test_art45_suspension_names_its_reason(self) -> None:
        t = do(task(), s.CLAIM)
        with pytest.raises(CaseInvalid, match="第四十五条"):
            do(t, s.SUSPEND, reason="想休假")
        suspended = do(t, s.SUSPEND, reason="expert_review", note="委托专家评审")
        resumed = do(suspended, s.RESUME)
        assert resumed.state == s.CLAIMED and resumed.pauses[0].kind == "art45"
        assert resumed.pauses[0].ended_on == dt.date(2026, 11, 23)

    def test_supplement_task_lapses_only_after_its_deadline(self) -> None:
        t = task(s.SUPPLEMENT, pending_materials=("family_relationship_proof",))
        due = supplement_due(t)
        assert due == dt.date(2026, 11, 30)  # 5 working days after Monday 23 November
        on_due = dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC)  # 23:00 Shanghai, the 30th
        with pytest.raises(s.IllegalTransition, match="未届满"):
            act(t, Action(s.LAPSE, "scheduler", on_due), IDLE)
        lapsed, _ = act(t, Action(s.LAPSE, "scheduler", on_due + dt.timedelta(hours=1)), IDLE)
        assert lapsed.state == s.LAPSED
        supplied = do(t, s.SUPPLY, "w1", materials=("family_relationship_proof",))
        assert supplied.state == s.SUPPLEMENTED and supplied.pending_materials == ()

    def test_withdrawal_needs_a_reason(self) -> None:
        with pytest.raises(CaseInvalid, match="撤回原因"):
            do(task(), s.WITHDRAW, "w1")
        assert do(task(), s.WITHDRAW, "w1", note="申请人撤回").state == s.WITHDRAWN


class TestDeadlines:
    def test_working_days_skip_weekends_and_holidays_and_count_make_up_days(self) -> None:
        # 2025-09-28 (Sunday) was a 调休 working day; 1-8 October the National Day holiday.
        assert working_days_between(dt.date(2025, 9, 26), dt.date(2025, 10, 9)) == 4

    def test_warning_states(self) -> None:
        opened = dt.date(2026, 11, 23)  # Monday
        ok = deadlines(opened, 5, 20, (), dt.date(2026, 11, 25))
        assert ok.promised_due == dt.date(2026, 11, 30) and ok.warning == ON_TIME
        assert ok.used_days == 2
        assert (
            deadlines(opened, 5, 20, (), dt.date(2026, 11, 27)).warning == DUE_SOON
        )  # 4 of 5 used
        assert deadlines(opened, 5, 20, (), dt.date(2026, 11, 30)).warning == DUE_SOON
        assert deadlines(opened, 5, 20, (), dt.date(2026, 12, 1)).warning == OVERDUE_PROMISED
        late = deadlines(opened, 5, 20, (), dt.date(2026, 12, 22))
        assert late.statutory_due == dt.date(2026, 12, 21) and late.warning == OVERDUE_STATUTORY

    def test_pauses_move_the_due_dates(self) -> None:
        opened = dt.date(2026, 11, 23)
        pause = Pause("supplement", "", dt.date(2026, 11, 24), dt.date(2026, 11, 27))
        d = deadlines(opened, 5, 20, (pause,), dt.date(2026, 12, 1))
        assert d.paused_days == 3  # 25, 26, 27 November
        assert d.promised_due == dt.date(2026, 12, 3) and d.warning == ON_TIME
        assert d.used_days == 6 - 3
        ongoing = Pause("art45", "expert_review", dt.date(2026, 11, 24))
        assert deadlines(opened, 5, 20, (ongoing,), dt.date(2026, 12, 7)).warning == ON_TIME


class TestOpening:
    def decision(self, outcome: str, reasons: tuple[str, ...], pending: bool = False) -> Decision:
        return Decision(
            item_code="X",
            version="1",
            digest="sha256:0",
            outcome=outcome,
            reasons=tuple(Reason(f"r{i}", o, "", None, ()) for i, o in enumerate(reasons)),
            missing_materials=(),
            pending_materials=(Material("m", "材料", "deferrable", False, None),)
            if pending
            else (),
            outputs={},
            as_of=dt.date(2026, 11, 23),
            derived={},
        )

    def test_kinds_and_verdicts(self) -> None:
        assert kind_of(self.decision("APPROVE", ("APPROVE",))) == s.INSTANT
        assert kind_of(self.decision("REJECT", ("REJECT",), pending=True)) == s.INSTANT
        assert kind_of(self.decision("APPROVE", ("APPROVE",), pending=True)) == s.SUPPLEMENT
        review = self.decision("MANUAL_REVIEW", ("APPROVE", "MANUAL_REVIEW"))
        assert kind_of(review) == s.REVIEW and rules_verdict(review) == "APPROVE"
        assert rules_verdict(self.decision("MANUAL_REVIEW", ("MANUAL_REVIEW",))) == ""
