"""Escalation (督办), pure: the alert an escalation raises and the notification it sends.

A supervisor escalates a task with a note; the transition (casework.model.act) marks the task
and names whom it is addressed to (the assignee while the task is in someone's hands, then the
department heads). The alert goes on the alert stream; the notification is what the webhook
receives: codes, dates and the supervisor's note, never the case's facts or the applicant.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from miaopi_server.casework import states as s
from miaopi_server.casework.alerts import ESCALATED, Alert
from miaopi_server.casework.deadlines import deadlines
from miaopi_server.casework.model import Task, supplement_due


def due_dates(task: Task, today: dt.date) -> dict[str, str]:
    """The task's deadlines as of `today`: promised and statutory (review tasks), the
    supplement due date (supplement tasks)."""
    if task.kind == s.SUPPLEMENT:
        return {"supplement_due_date": supplement_due(task).isoformat()}
    d = deadlines(task.opened_on, task.promised_days, task.statutory_days, task.pauses, today)
    return {
        "promised_due_date": d.promised_due.isoformat(),
        "statutory_due_date": d.statutory_due.isoformat(),
    }


def escalation_alert(task: Task, note: str, recipients: list[str], today: dt.date) -> Alert:
    due = due_dates(task, today)
    on = due.get("promised_due_date") or due.get("supplement_due_date", "")
    return Alert(
        task.decision_id, ESCALATED, task.item_code, task.department, task.jurisdiction, on,
        recipients=tuple(recipients), note=note,
    )  # fmt: skip


def notification(alert: Alert, task: Task, transition_id: str, today: dt.date) -> dict[str, Any]:
    """The webhook's JSON body for an escalation alert (stored with it, sent as is)."""
    return {
        "alert_kind": alert.kind,
        "alert_seq": alert.seq,
        "raised_at": alert.raised_at,
        "decision_id": task.decision_id,
        "transition_id": transition_id,
        "task_kind": task.kind,
        "state": task.state,
        "item_code": task.item_code,
        "department": task.department,
        "jurisdiction": task.jurisdiction,
        **due_dates(task, today),
        "escalations": task.escalations,
        "note": alert.note,
        "recipients": list(alert.recipients),
    }
