"""What a decision opens: a review task, a supplement task, or a case closed at once.

Called for every decision that is recorded (never for dry runs or replays, which record
nothing): MANUAL_REVIEW opens a review task; APPROVE with deferrable (容缺后补) materials still
pending opens a supplement task with the item's supplement limit; anything else is closed by
the rules alone (秒批/即办).
"""

from __future__ import annotations

import datetime as dt

from miaopi_server.casework import states as s
from miaopi_server.casework.model import APPROVE, REJECT, Task
from miaopi_server.decision.decide import MANUAL_REVIEW, Decision
from miaopi_server.rules.model import Item


def rules_verdict(decision: Decision) -> str:
    """What the decision's definite reasons say without the human: REJECT if any rejects,
    else APPROVE if any approves, else "" (only reasons asking for review)."""
    outcomes = {r.outcome for r in decision.reasons}
    return REJECT if REJECT in outcomes else APPROVE if APPROVE in outcomes else ""


def kind_of(decision: Decision) -> str:
    if decision.outcome == MANUAL_REVIEW:
        return s.REVIEW
    if decision.outcome == APPROVE and decision.pending_materials:
        return s.SUPPLEMENT
    return s.INSTANT


def open_task(
    decision: Decision,
    decision_id: str,
    decided_at: dt.datetime,
    item: Item,
    jurisdiction: str,
    window_id: str,
) -> Task:
    kind = kind_of(decision)
    return Task(
        decision_id=decision_id,
        kind=kind,
        state=s.initial_state(kind),
        item_code=decision.item_code,
        department=item.department,
        jurisdiction=jurisdiction,
        window_id=window_id,
        opened_at=decided_at.astimezone(dt.UTC),
        promised_days=item.promised_days,
        statutory_days=item.statutory_days,
        supplement_days=item.supplement_days,
        rules_outcome=decision.outcome,
        rules_verdict=rules_verdict(decision),
        pending_materials=tuple(m.id for m in decision.pending_materials)
        if kind == s.SUPPLEMENT
        else (),
    )
