"""A citizen's rating of a closed case (好差评): 1 to 5 and an optional comment, given once
through the window that decided it, never changed.

A rating is recorded as a transition of its own action, `rate`, that leaves the state as it
is (so it is sealed, chained and verified like every transition); `check_rating` is its rule
book, pure: the case must be closed (by the rules at once, by a reviewer's decision or by the
supplied materials; not withdrawn, not lapsed, not still open) and the rating well formed.
"""

from __future__ import annotations

from typing import Any

from miaopi_server.casework import states as s
from miaopi_server.casework.model import Action, Task, text_violations
from miaopi_server.errors import CaseInvalid, FieldViolation

RATE = "rate"
MAX_COMMENT = 500
SATISFIED_FROM = 4  # 4 and 5 count as satisfied (满意)
# Cases whose applicant received an answer: a rating is about how it was handled.
RATEABLE = frozenset({s.CLOSED, s.DECIDED, s.SUPPLEMENTED})


class AlreadyRated(s.IllegalTransition):
    """A case has one rating; a second is refused, whatever it says."""

    def __init__(self, task: Task):
        super().__init__(task.kind, task.state, RATE, "已评价，评价不可修改")


def check_rating(task: Task, a: Action) -> dict[str, Any]:
    """The details of the rating's record, or CaseInvalid / IllegalTransition."""
    bad: list[FieldViolation] = []
    if not 1 <= a.score <= 5:
        bad.append(FieldViolation("score", "评分须为 1 至 5"))
    if len(a.note) > MAX_COMMENT:
        bad.append(FieldViolation("comment", f"不能超过 {MAX_COMMENT} 字"))
    bad += text_violations("comment", a.note)
    if bad:
        raise CaseInvalid(bad)
    if task.state not in RATEABLE:
        raise s.IllegalTransition(task.kind, task.state, RATE, "只有已办结的办件可以评价")
    details: dict[str, Any] = {"score": a.score}
    if a.note.strip():
        details["comment"] = a.note
    return details
