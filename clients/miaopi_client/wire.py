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
from typing import Any

_OUTCOMES = frozenset({"APPROVE", "REJECT", "MANUAL_REVIEW"})


class _NotPlain(Exception):
    """A value the direct path leaves to protobuf."""


def wire_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """Facts typed as the server receives them: as through a protobuf Struct and back
    (convert.struct_to_dict of client.facts_struct), e.g. every number a float."""
    try:
        return _plain(facts)  # type: ignore[no-any-return]
    except (_NotPlain, OverflowError):
        pass
    from miaopi_server import convert

    from .client import facts_struct

    return convert.struct_to_dict(facts_struct(facts))


def _plain(v: Any) -> Any:
    """A JSON value as a Struct value gives it back; _NotPlain for anything else."""
    t = type(v)
    if t is str or t is bool or v is None:
        return v
    if t is float:
        if v - v == 0.0:  # finite: NaN and infinities give NaN
            return v
        raise _NotPlain
    if t is int:
        return float(v)  # OverflowError beyond a double, as the Struct raises it
    if t is dict:
        out = {}
        for k, x in v.items():
            if type(k) is not str:
                raise _NotPlain
            out[k] = _plain(x)
        return out
    if t is list:
        return [_plain(x) for x in v]
    raise _NotPlain


def _top(v: Any) -> Any:
    # convert._struct and convert._value turn a date into text at the top level only.
    return _plain(v.isoformat() if isinstance(v, dt.date) else v)


def wire_decision(d: Any, full: bool = True) -> dict[str, Any]:
    """A miaopi_server Decision as client.decision_dict gives it from convert.decision,
    without what only a server adds (decision_id, decided_at, receipt): defaults omitted,
    outcomes without their enum prefix, Struct and Value numbers as floats. With full=False,
    only outcome, missing_materials and outputs (all that cases.compare reads)."""
    try:
        return _decision(d, full)
    except (_NotPlain, OverflowError):
        pass
    from miaopi_server import convert

    from .client import decision_dict

    out = decision_dict(convert.decision(d, "", "", dt.datetime.now(dt.UTC)))
    del out["decided_at"]
    return out if full else {k: out[k] for k in _COMPARED if k in out}


_COMPARED = ("outcome", "missing_materials", "outputs")


def _decision(d: Any, full: bool) -> dict[str, Any]:
    if d.outcome not in _OUTCOMES:
        raise _NotPlain
    missing = [_material(m) for m in d.missing_materials]
    outputs = {k: _top(v) for k, v in d.outputs.items()}
    if not full:
        return {"outcome": d.outcome, "outputs": outputs} | (
            {"missing_materials": missing} if missing else {}
        )
    # Keys in the .proto's field order, as MessageToDict lists them; empty ones left out.
    out: dict[str, Any] = _non_empty(item_code=d.item_code, outcome=d.outcome)
    if d.reasons:
        out["reasons"] = [_reason(r) for r in d.reasons]
    if missing:
        out["missing_materials"] = missing
    if d.pending_materials:
        out["pending_materials"] = [_material(m) for m in d.pending_materials]
    out["outputs"] = outputs
    out["ruleset"] = _non_empty(item_code=d.item_code, version=d.version, digest=d.digest)
    out["as_of_date"] = d.as_of.isoformat()
    if d.review_due:
        out["review_due_date"] = d.review_due.isoformat()
    if d.review_due_estimated:
        out["review_due_date_estimated"] = True
    out["derived_facts"] = {k: _top(v) for k, v in d.derived.items()}
    return out


def _reason(r: Any) -> dict[str, Any]:
    from miaopi_server.lang.probes import MISSING

    if r.outcome not in _OUTCOMES:
        raise _NotPlain
    out = _non_empty(rule_id=r.rule_id, outcome=r.outcome, message=r.message)
    b = r.basis
    if b is not None:
        out["legal_basis"] = _non_empty(id=b.id, law=b.law, article=b.article, citation=b.citation)
    if r.facts_read:
        out["facts_read"] = [
            _non_empty(path=p, missing=True)
            if v is MISSING
            else _non_empty(path=p) | {"value": _top(v)}
            for p, v in r.facts_read
        ]
    if r.condition:
        out["condition"] = r.condition
    return out


def _material(m: Any) -> dict[str, Any]:
    return _non_empty(id=m.id, name=m.name, e_license=m.e_license)


def _non_empty(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v}
