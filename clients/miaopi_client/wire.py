"""What the gRPC wire does to a case and to its decision, done in plain Python.

A case sent to a server travels as a protobuf Struct (every number becomes a double), and its
decision comes back as a miaopi.v1.Decision that the client turns into a dict
(client.decision_dict). Deciding in-process, doing both conversions through protobuf costs
more than the decision itself, so these functions give the same results directly. Anything
the direct path does not handle (NaN, infinities, numbers beyond a double, values that are not
plain JSON) takes the real protobuf path instead, which treats it exactly as the wire does
(e.g. CaseInvalid for NaN): the result is the same by construction there too.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

# offline loads each of its names when first used: importing it here loads nothing more, and
# a module attribute is cheaper per case than an import statement inside the function.
import miaopi_server.offline as offline

from .client import decision_dict, facts_struct, without_outcome_prefix

if TYPE_CHECKING:
    from miaopi_server.offline import Decision

_OUTCOMES = frozenset({"APPROVE", "REJECT", "MANUAL_REVIEW"})


class _NotPlain(Exception):
    """A value the direct path leaves to protobuf."""


def wire_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """Facts typed as the server receives them: as through a protobuf Struct and back
    (offline.facts_from_struct of client.facts_struct), e.g. every number a float."""
    try:
        if type(facts) is dict:
            return _plain_dict(facts)
        return _plain_list([facts])[0]  # type: ignore[no-any-return]
    except (_NotPlain, OverflowError):
        pass
    return offline.facts_from_struct(facts_struct(facts))


# Scalars are handled inline in the container loops (most values are): one call per
# container, not one per value.


def _plain_dict(d: dict[Any, Any]) -> dict[str, Any]:
    """A JSON object as a Struct gives it back; _NotPlain for anything else."""
    out = {}
    for k, v in d.items():
        if type(k) is not str:
            raise _NotPlain
        t = type(v)
        if t is str or t is bool or v is None:
            out[k] = v
        elif t is int:
            out[k] = float(v)  # OverflowError beyond a double, as the Struct raises it
        elif t is float:
            if v - v != 0.0:  # NaN and infinities give NaN
                raise _NotPlain
            out[k] = v
        elif t is dict:
            out[k] = _plain_dict(v)
        elif t is list:
            out[k] = _plain_list(v)
        else:
            raise _NotPlain
    return out


def _plain_list(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in items:
        t = type(v)
        if t is str or t is bool or v is None:
            out.append(v)
        elif t is int:
            out.append(float(v))
        elif t is float:
            if v - v != 0.0:
                raise _NotPlain
            out.append(v)
        elif t is dict:
            out.append(_plain_dict(v))
        elif t is list:
            out.append(_plain_list(v))
        else:
            raise _NotPlain
    return out


def wire_decision(d: Decision, full: bool = True) -> dict[str, Any]:
    """A miaopi_server Decision as client.decision_dict gives it from the server's message
    (offline.decision_message), without what only a server adds (decision_id, decided_at,
    receipt): defaults omitted, outcomes without their enum prefix, Struct and Value numbers as
    floats. With full=False, only outcome, missing_materials, outputs and the reasons' rule ids
    (all that cases.compare reads)."""
    try:
        if d.outcome not in _OUTCOMES:
            raise _NotPlain
        if not full:
            missing = [offline.material_json(m) for m in d.missing_materials]
            reasons = [{"rule_id": r.rule_id} for r in d.reasons]  # what rules_fired reads
            return {
                "outcome": d.outcome,
                "outputs": offline.json_value(d.outputs),
                "reasons": reasons,
            } | ({"missing_materials": missing} if missing else {})
        # decision_json is MessageToDict(decision_message(...)) built directly.
        out = offline.decision_json(d, "", "", _ANY_TIME)
        del out["decided_at"]
        return without_outcome_prefix(out)
    except (_NotPlain, ValueError, TypeError, OverflowError):
        pass
    out = decision_dict(offline.decision_message(d, "", "", dt.datetime.now(dt.UTC)))
    del out["decided_at"]
    return out if full else {k: out[k] for k in _COMPARED if k in out}


_COMPARED = ("outcome", "missing_materials", "outputs", "reasons")
_ANY_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # decided_at is dropped
