"""A task and what acting on it does: who may act, what each action must carry, what changes.

`act(task, action)` is the whole rule book of a transition, pure: it returns the task after
the action and the details its audit record carries, or raises IllegalTransition (the state
or the actor does not allow it) or CaseInvalid (the action lacks what it must carry: every
missing part at once).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from typing import Any

from miaopi_server.casework import states as s
from miaopi_server.casework.deadlines import Pause
from miaopi_server.clock import SHANGHAI
from miaopi_server.decision.workdays import add_working_days
from miaopi_server.errors import CaseInvalid, FieldViolation

APPROVE, REJECT = "APPROVE", "REJECT"
# 行政许可法 Art. 45: time for hearings, tendering, auctions, testing, inspection, quarantine,
# appraisal and expert review is not counted in the limit.
ART45_REASONS = ("hearing", "tendering", "auction", "testing", "inspection", "quarantine",
                 "appraisal", "expert_review")  # fmt: skip
MAX_TEXT = 2000
# Reasons, legal bases and materials of one action: they go into the record and onto the
# notice, each line to be read; before, only the request's size bounded them.
MAX_ITEMS = 50
# Control characters (tab and line breaks aside: notes are written in a text box) and lone
# surrogates. They mean nothing in what a reviewer or a citizen writes, and PostgreSQL can
# store no NUL: a NUL in a note refused the write as "audit unavailable", and one in the
# materials of a recorded supplement request made every GetKpis of its month fail.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def text_violations(name: str, text: str) -> list[FieldViolation]:
    """A control character in a free-text field of an action."""
    if _CONTROL.search(text):
        return [FieldViolation(name, "含有控制字符")]
    return []


@dataclass(frozen=True)
class Task:
    """The work one decision opened (kind instant: none, closed at once)."""

    decision_id: str
    kind: str  # states.INSTANT | REVIEW | SUPPLEMENT
    state: str
    item_code: str
    department: str
    jurisdiction: str  # the deciding window's
    window_id: str
    opened_at: dt.datetime  # UTC
    promised_days: int
    statutory_days: int
    supplement_days: int
    rules_outcome: str  # what the rules decided: APPROVE | REJECT | MANUAL_REVIEW
    rules_verdict: str  # what their definite reasons say (APPROVE | REJECT), "" when none
    pending_materials: tuple[str, ...] = ()  # deferrable ones, or those a reviewer asked for
    assignee: str = ""
    active_at: dt.datetime | None = None  # the assignee's last action (claim expiry)
    pauses: tuple[Pause, ...] = ()
    outcome: str = ""  # the reviewer's
    overridden: bool = False  # the reviewer decided against the rules (不合规办理 check)
    transitions: int = 0
    escalations: int = 0  # times a supervisor escalated it (督办)
    last_escalated_at: dt.datetime | None = None  # UTC

    @property
    def opened_on(self) -> dt.date:
        return self.opened_at.astimezone(SHANGHAI).date()

    def claim_expired(self, now: dt.datetime, idle: dt.timedelta) -> bool:
        return self.state == s.CLAIMED and (self.active_at is None or now - self.active_at >= idle)


@dataclass(frozen=True)
class Action:
    """What an actor asks: `note` is the text of a supplement request, a withdrawal, an
    escalation (required there) or a suspension; `reason` a suspension's ART45_REASONS ground.
    `supervising`: the actor is a supervisor (or admin), who may suspend and resume a task
    another reviewer claimed. `notify`: the department heads an escalation goes to."""

    action: str
    by: str
    at: dt.datetime  # UTC
    outcome: str = ""
    reasons: tuple[str, ...] = ()
    legal_basis: tuple[str, ...] = ()
    justification: str = ""
    note: str = ""
    materials: tuple[str, ...] = ()
    score: int = 0  # a citizen rating (casework/rating.py)
    reason: str = ""
    supervising: bool = False
    notify: tuple[str, ...] = ()


def supplement_due(task: Task) -> dt.date:
    """The last day to supply the deferred materials of a supplement task."""
    return add_working_days(task.opened_on, max(task.supplement_days, 1)).date


def act(task: Task, a: Action, claim_idle: dt.timedelta) -> tuple[Task, dict[str, Any]]:
    """The task after `a`, and the details of the transition for its record."""
    target = s.next_state(task.kind, task.state, a.action)
    _check_actor(task, a, claim_idle)
    _check_input(task, a)
    today = a.at.astimezone(SHANGHAI).date()
    changes: dict[str, Any] = {"state": target, "transitions": task.transitions + 1}
    details: dict[str, Any] = {}
    if a.action == s.CLAIM:
        if task.state == s.CLAIMED and task.assignee != a.by:
            details["expired_claim_of"] = task.assignee
        changes.update(assignee=a.by, active_at=a.at)
    elif a.action == s.RELEASE:
        changes.update(assignee="", active_at=None)
    elif a.action == s.DECIDE:
        overridden = bool(task.rules_verdict) and a.outcome != task.rules_verdict
        changes.update(outcome=a.outcome, overridden=overridden, active_at=a.at)
        details.update(
            outcome=a.outcome,
            reasons=list(a.reasons),
            legal_basis=list(a.legal_basis),
            rules_outcome=task.rules_outcome,
            rules_verdict=task.rules_verdict,
            overridden=overridden,
        )
        if a.justification:
            details["justification"] = a.justification
    elif a.action == s.REQUEST_SUPPLEMENT:
        pause = Pause("supplement", a.note, today)
        changes.update(pauses=(*task.pauses, pause), pending_materials=tuple(a.materials))
        changes.update(assignee="", active_at=None)  # re-queued once supplied
        details.update(materials=list(a.materials), note=a.note)
    elif a.action == s.SUSPEND:
        changes.update(pauses=(*task.pauses, Pause("art45", a.reason, today)), active_at=a.at)
        details.update(reason=a.reason)
    elif a.action == s.ESCALATE:
        changes.update(escalations=task.escalations + 1, last_escalated_at=a.at)
        details.update(note=a.note, notify=escalation_recipients(task, a.notify))
    elif a.action in (s.RESUME, s.SUPPLY) and task.state in s.PAUSED:
        last = task.pauses[-1]
        changes.update(pauses=(*task.pauses[:-1], replace(last, ended_on=today)))
        if a.action == s.RESUME:
            changes["active_at"] = a.at
    if a.action == s.SUPPLY:
        changes["pending_materials"] = ()
        details["materials"] = sorted(set(a.materials))
    if a.action in (s.WITHDRAW, s.LAPSE, s.SUSPEND, s.RESUME) and a.note:
        details["note"] = a.note
    return replace(task, **changes), details


def escalation_recipients(task: Task, heads: tuple[str, ...]) -> list[str]:
    """Whom an escalation is addressed to: the assignee (while the task is claimed or
    suspended in their hands), then the department heads, each once."""
    first = [task.assignee] if task.assignee else []
    return list(dict.fromkeys([*first, *heads]))


def _check_actor(task: Task, a: Action, idle: dt.timedelta) -> None:
    assignee_only = (s.RELEASE, s.DECIDE, s.REQUEST_SUPPLEMENT, s.SUSPEND, s.RESUME)
    if a.action in (s.SUSPEND, s.RESUME) and a.supervising:
        return  # a supervisor may stop and restart the clock of a task in its jurisdiction
    taken = a.action == s.CLAIM and task.state == s.CLAIMED and task.assignee != a.by
    if taken and not task.claim_expired(a.at, idle):
        raise s.IllegalTransition(task.kind, task.state, a.action, f"已由 {task.assignee} 认领")
    if a.action == s.LAPSE:
        due = supplement_due(task)
        if a.at.astimezone(SHANGHAI).date() <= due:
            raise s.IllegalTransition(task.kind, task.state, a.action, f"补正期限 {due} 未届满")
    if a.action in assignee_only and task.assignee != a.by:
        raise s.IllegalTransition(
            task.kind, task.state, a.action, f"只有认领人 {task.assignee or '（无）'} 可以办理"
        )


def _check_input(task: Task, a: Action) -> None:
    bad: list[FieldViolation] = []
    for name, text in (("justification", a.justification), ("note", a.note)):
        if len(text) > MAX_TEXT:
            bad.append(FieldViolation(name, f"不能超过 {MAX_TEXT} 字"))
        bad += text_violations(name, text)
    bad += text_violations("reason", a.reason)
    for name, texts in (
        ("reasons", a.reasons), ("legal_basis", a.legal_basis), ("materials", a.materials)
    ):  # fmt: skip
        if len(texts) > MAX_ITEMS:
            bad.append(FieldViolation(name, f"不能超过 {MAX_ITEMS} 项"))
        for i, text in enumerate(texts):
            if len(text) > MAX_TEXT:
                bad.append(FieldViolation(f"{name}[{i}]", f"不能超过 {MAX_TEXT} 字"))
            bad += text_violations(f"{name}[{i}]", text)
    if a.action == s.DECIDE:
        if a.outcome not in (APPROVE, REJECT):
            bad.append(FieldViolation("outcome", "人工决定须为 APPROVE 或 REJECT"))
        if not [r for r in a.reasons if r.strip()]:
            bad.append(FieldViolation("reasons", "必填：决定理由"))
        if a.outcome == REJECT and not [b for b in a.legal_basis if b.strip()]:
            bad.append(
                FieldViolation("legal_basis", "不予许可须说明法律依据（行政许可法第三十八条）")
            )
        if task.rules_verdict and a.outcome != task.rules_verdict and not a.justification.strip():
            bad.append(
                FieldViolation(
                    "justification",
                    f"规则结论为 {task.rules_verdict}，改为 {a.outcome} 须书面说明理由",
                )
            )
    elif a.action == s.SUSPEND and a.reason not in ART45_REASONS:
        bad.append(
            FieldViolation(
                "reason", f"中止计时须为行政许可法第四十五条所列情形：{', '.join(ART45_REASONS)}"
            )
        )
    elif a.action == s.ESCALATE and not a.note.strip():
        bad.append(FieldViolation("note", "必填：督办意见"))
    elif a.action == s.REQUEST_SUPPLEMENT and not [m for m in a.materials if m.strip()]:
        bad.append(FieldViolation("materials", "须一次性告知全部需补正的材料"))
    elif a.action == s.SUPPLY:
        missing = sorted(set(task.pending_materials) - set(a.materials))
        if missing:
            bad.append(FieldViolation("materials", f"尚缺材料：{', '.join(missing)}"))
    elif a.action == s.WITHDRAW and not a.note.strip():
        bad.append(FieldViolation("note", "必填：撤回原因"))
    if bad:
        raise CaseInvalid(bad)
