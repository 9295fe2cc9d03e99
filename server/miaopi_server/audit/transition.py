"""A casework transition as a record of the trail (kind 'transition'), sealed by the tree head
of its commit like a decision, linked to the decision whose task it moves:

    {"transition": {"id", "decision_id", "item_code", "kind", "action", "from", "to", "by",
                    "at", ...what the action carried (casework.model.act)},
     "node_id", "prev_hash", "seq"}

Columns: decision_id = the transition's id, item_code = the task's, decided_at = `at`,
request_id NULL, outcome/window_id/case_digest empty, no case row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from miaopi_server.audit.canonical import canonical
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


def transition_body(seq: int, prev_hash: str, node_id: str, fields: dict[str, Any]) -> bytes:
    return canonical({"transition": fields, "node_id": node_id, "prev_hash": prev_hash, "seq": seq})
