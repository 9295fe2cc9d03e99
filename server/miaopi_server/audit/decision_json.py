"""A decision as proto3 JSON: what `MessageToDict(edge.convert.decision_message(...),
preserving_proto_field_name=True)` gives, receipt excluded, built from the domain objects
directly. The audit record stores this form (canonicalised), and offline replay compares it;
protobuf's pure-Python JSON printer cost a tenth of a Decide. tests/test_convert.py checks
the two agree.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from miaopi_server.decision.decide import Decision, Reason
from miaopi_server.lang.probes import MISSING
from miaopi_server.rules.model import LegalBasis, Material
from miaopi_server.rules.remedies import Remedies


def _non_empty(**fields: Any) -> dict[str, Any]:
    """proto3 JSON leaves out fields at their default (empty text, false, zero)."""
    return {k: v for k, v in fields.items() if v}


def json_value(v: Any) -> Any:
    """A Struct value's JSON form: numbers as floats, dates (at any depth) as ISO text.
    NaN and infinities raise ValueError, as MessageToDict does."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int | float):
        if not math.isfinite(v):
            raise ValueError(f"{v} has no JSON form")
        return float(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    return [json_value(x) for x in v]


def _json_basis(b: LegalBasis) -> dict[str, str]:
    return _non_empty(id=b.id, law=b.law, article=b.article, citation=b.citation)


def _json_reason(r: Reason) -> dict[str, Any]:
    out = _non_empty(rule_id=r.rule_id, outcome=f"OUTCOME_{r.outcome}", message=r.message)
    if r.basis is not None:
        out["legal_basis"] = _json_basis(r.basis)
    if r.facts_read:
        out["facts_read"] = [
            _non_empty(path=p, missing=True)
            if v is MISSING
            else _non_empty(path=p) | {"value": json_value(v)}
            for p, v in r.facts_read
        ]
    if r.condition:
        out["condition"] = r.condition
    return out


def remedies_json(r: Remedies) -> dict[str, Any]:
    out = _non_empty(
        review_body=r.review_body,
        review_days=r.review_days,
        court=r.court,
        litigation_months=r.litigation_months,
        notice=r.notice,
    )
    if r.basis:
        out["legal_basis"] = [_json_basis(b) for b in r.basis]
    return out


def material_json(m: Material) -> dict[str, Any]:
    return _non_empty(id=m.id, name=m.name, e_license=m.e_license)


def _json_timestamp(when: dt.datetime) -> str:
    """RFC 3339 in UTC with 0, 3 or 6 fractional digits, as Timestamp.ToJsonString (which,
    like Timestamp.FromDatetime, takes a naive time as UTC)."""
    if when.tzinfo is not dt.UTC:
        when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    if when.year < 1000:  # strftime's %Y does not pad these: keep its exact text
        text = when.strftime("%Y-%m-%dT%H:%M:%S")
    else:  # the same text at a third of strftime's cost (one per decision)
        parts = (when.year, when.month, when.day, when.hour, when.minute, when.second)
        text = "%04d-%02d-%02dT%02d:%02d:%02d" % parts  # noqa: UP031
    micros = when.microsecond
    if micros == 0:
        return text + "Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


def decision_json(
    d: Decision, decision_id: str, request_id: str, decided_at: dt.datetime
) -> dict[str, Any]:
    """`decision(...)` as proto3 JSON with the original field names, receipt excluded."""
    out = _non_empty(decision_id=decision_id, request_id=request_id, item_code=d.item_code)
    out["outcome"] = f"OUTCOME_{d.outcome}"
    if d.reasons:
        out["reasons"] = [_json_reason(r) for r in d.reasons]
    if d.missing_materials:
        out["missing_materials"] = [material_json(m) for m in d.missing_materials]
    if d.pending_materials:
        out["pending_materials"] = [material_json(m) for m in d.pending_materials]
    out["outputs"] = json_value(d.outputs)
    out["ruleset"] = _non_empty(item_code=d.item_code, version=d.version, digest=d.digest)
    out["as_of_date"] = d.as_of.isoformat()
    out["decided_at"] = _json_timestamp(decided_at)
    if d.review_due:
        out["review_due_date"] = d.review_due.isoformat()
    if d.review_due_estimated:
        out["review_due_date_estimated"] = True
    out["derived_facts"] = json_value(d.derived)
    if d.provenance:
        out["provenance"] = [
            _non_empty(
                path=o.path,
                origin=o.origin,
                source=o.source,
                record_id=o.record_id,
                fetched_at=o.fetched_at,
                note=o.note,
            )
            for o in d.provenance
        ]
    if d.e_licenses:
        out["e_licenses"] = [
            _non_empty(
                material_id=u.material_id,
                licence_type=u.licence_type,
                number=u.number,
                fetched_at=u.fetched_at,
            )
            for u in d.e_licenses
        ]
    if d.remedies is not None:
        out["remedies"] = remedies_json(d.remedies)
    if d.sourced is not None:
        out["sourced"] = json_value(d.sourced.to_json())
    return out
