"""A casework transition as a record of the trail (kind 'transition'), sealed by the tree head
of its commit like a decision, linked to the decision whose task it moves:

    {"transition": {"id", "decision_id", "item_code", "kind", "action", "from", "to", "by",
                    "at", ...what the action carried (casework.model.act)},
     "node_id", "prev_hash", "seq"}

Columns: decision_id = the transition's id, item_code = the task's, decided_at = `at`,
request_id NULL, outcome/window_id/case_digest empty, no case row.

A rating's comment is not in the body: the body has `comment_digest` (comment_digest below)
and the `rating_comments` row has the comment and its salt, erased by a purge with the case.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from miaopi_server.audit.canonical import canonical, sha256_hex
from miaopi_server.audit.record import fixed_time
from miaopi_server.casework.model import Action

KIND = "transition"


@dataclass(frozen=True)
class PendingTransition:
    """An action on the task of `decision_id`, applied in the writer's transaction: the state
    is read, checked and changed there, so two processes cannot both make the same move."""

    transition_id: str
    decision_id: str
    action: Action
    at: str  # fixed_time(action.at): also the decided_at column
    node_id: str
    claim_idle_seconds: float


def new_transition(
    decision_id: str, action: Action, node_id: str, claim_idle_seconds: float
) -> PendingTransition:
    """A transition with a fresh id, recorded at the action's time: what every caller (the
    ReviewService, the scheduler's lapses, a console) hands to the store."""
    return PendingTransition(
        transition_id=f"transition-{uuid.uuid4()}",
        decision_id=decision_id,
        action=action,
        at=fixed_time(action.at),
        node_id=node_id,
        claim_idle_seconds=claim_idle_seconds,
    )


def comment_digest(salt: str, comment: str) -> str:
    """What a rating's record holds of its comment (personal data, kept in rating_comments
    until purged): a salted digest, so a short comment cannot be guessed back from it."""
    return sha256_hex(canonical({"comment": comment, "salt": salt}))


def transition_body(seq: int, prev_hash: str, node_id: str, fields: dict[str, Any]) -> bytes:
    return canonical({"transition": fields, "node_id": node_id, "prev_hash": prev_hash, "seq": seq})
