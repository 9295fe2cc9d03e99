"""Alerts (实时提醒) of casework, pure: what a task, as stored, calls for on a given day.

A task raises at most one alert of each kind, ever (the store's alerts table has one row per
(task, kind)), and the kind is the task's state as of the day it is looked at, so a scheduler
that was down when a deadline passed raises exactly the alert of the state it finds:

  due_soon            a review task has used the due-soon share of its promised working days
  overdue_promised    a review task is past its promised due date
  overdue_statutory   a review task is past its statutory due date
  supplement_overdue  a 容缺 approval's deferred materials were due and did not come
  override            a reviewer decided against the rules' verdict (不合规办理)

and, raised by a supervisor's escalation rather than by the scheduler (casework/escalation.py),
one per escalation:

  escalated           督办: addressed to the assignee and the department head, with a note
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from miaopi_server.casework import states as s
from miaopi_server.casework.deadlines import (
    DEFAULT_DUE_SOON_FRACTION,
    OVERDUE_STATUTORY,
    deadlines,
)
from miaopi_server.casework.model import Task, supplement_due

SUPPLEMENT_OVERDUE = "supplement_overdue"
OVERRIDE = "override"
ESCALATED = "escalated"
KINDS = ("due_soon", "overdue_promised", OVERDUE_STATUTORY, SUPPLEMENT_OVERDUE, OVERRIDE, ESCALATED)


@dataclass(frozen=True)
class Alert:
    decision_id: str
    kind: str
    item_code: str
    department: str
    jurisdiction: str
    due_on: str  # YYYY-MM-DD the deadline concerned ("" for an override)
    seq: int = 0  # the stream's cursor, given when stored
    raised_at: str = ""  # fixed-width UTC, given when stored
    recipients: tuple[str, ...] = ()  # an escalation's: principal ids
    note: str = ""  # an escalation's


def alert_for(
    task: Task, today: dt.date, due_soon_fraction: float = DEFAULT_DUE_SOON_FRACTION
) -> Alert | None:
    """The alert `task` calls for on `today`, or None."""
    kind, due = "", ""
    if task.kind == s.REVIEW and task.state not in s.FINAL:
        d = deadlines(
            task.opened_on, task.promised_days, task.statutory_days, task.pauses, today,
            due_soon_fraction,
        )  # fmt: skip
        kind = d.warning
        due = (d.statutory_due if kind == OVERDUE_STATUTORY else d.promised_due).isoformat()
    elif task.kind == s.SUPPLEMENT and task.state == s.SUPPLEMENT_PENDING:
        last = supplement_due(task)
        if today > last:
            kind, due = SUPPLEMENT_OVERDUE, last.isoformat()
    elif task.state == s.DECIDED and task.overridden:
        kind = OVERRIDE
    if not kind:
        return None
    return Alert(task.decision_id, kind, task.item_code, task.department, task.jurisdiction, due)
