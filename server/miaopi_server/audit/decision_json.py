"""A decision as proto3 JSON: what `MessageToDict(edge.convert.decision_message(...),
preserving_proto_field_name=True)` gives, receipt excluded, built from the domain objects
directly. The audit record stores this form (canonicalised), and offline replay compares it;
protobuf's pure-Python JSON printer cost a tenth of a Decide. tests/test_convert.py checks
the two agree.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Generic, TypeVar

import orjson

from miaopi_server.audit.canonical import canonical
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
        out["provenance"] = _json_provenance(d)
    if d.e_licenses:
        out["e_licenses"] = _json_e_licenses(d)
    if d.remedies is not None:
        out["remedies"] = remedies_json(d.remedies)
    if d.sourced is not None:
        out["sourced"] = json_value(d.sourced.to_json())
    return out


def _json_provenance(d: Decision) -> list[dict[str, str]]:
    return [
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


def _json_e_licenses(d: Decision) -> list[dict[str, str]]:
    return [
        _non_empty(
            material_id=u.material_id,
            licence_type=u.licence_type,
            number=u.number,
            fetched_at=u.fetched_at,
        )
        for u in d.e_licenses
    ]


# --- The record's bytes: canonical(decision_json(...)) with less Python per decision ---
#
# Most of a decision's JSON is the same for every case that fires the same rules under the
# same rule file: the ruleset, the remedies, the materials, and each reason but the facts it
# read. Those parts are encoded once (by `canonical` itself) and kept as orjson Fragments;
# per decision only the ids, dates and values are new, normalised in one walk (json_value
# and canonical's float rule together) and encoded by one orjson call with sorted keys. A
# Fragment is a whole value, so sorting the keys around it gives canonical's order. A value
# of any other type, a subclass (orjson refuses it here), a NaN, and any error leave the
# whole decision to the reference, canonical(decision_json(...)), which raises what it raises.

T = TypeVar("T")
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS


class _Unsure(Exception):
    """A value the quick path leaves to the reference."""


class PerObject(Generic[T]):
    """What is built from the model's immutable objects (legal bases, materials, remedies),
    made once per object, as every decision of an item repeats them: their record parts here,
    their response messages in edge/convert.py. Keyed by identity (the object is kept with
    what was built, so an id is never reused while cached); bounded, as a reload brings new
    objects. What is handed out is only ever copied from, never changed."""

    def __init__(self, build: Callable[[Any], T], limit: int = 4096):
        self._build, self._limit = build, limit
        self._made: dict[int, tuple[Any, T]] = {}

    def __call__(self, obj: Any) -> T:
        hit = self._made.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        if len(self._made) >= self._limit:
            self._made.clear()
        built = self._build(obj)
        self._made[id(obj)] = (obj, built)
        return built


def _fragment(value: Any) -> orjson.Fragment:
    return orjson.Fragment(canonical(value))


_basis_part = PerObject(lambda b: _fragment(_json_basis(b)))
_material_part = PerObject(lambda m: _fragment(material_json(m)))
_remedies_part = PerObject(lambda r: _fragment(remedies_json(r)))
_ReasonKey = tuple[str, str, str, str, int]
_reasons: dict[_ReasonKey, tuple[LegalBasis | None, dict[str, Any]]] = {}


@lru_cache(maxsize=4096)  # one per item version; bounded, as reloads add more
def _ruleset_part(item_code: str, version: str, digest: str) -> orjson.Fragment:
    return _fragment(_non_empty(item_code=item_code, version=version, digest=digest))


def _reason_template(r: Reason) -> dict[str, Any]:
    """A reason's JSON but the facts it read (only ever copied from); keyed by its text and
    its basis's identity, the basis kept beside it."""
    key = (r.rule_id, r.outcome, r.message, r.condition, id(r.basis))
    hit = _reasons.get(key)
    if hit is not None and hit[0] is r.basis:
        return hit[1]
    if len(_reasons) >= 4096:
        _reasons.clear()
    out = _non_empty(rule_id=r.rule_id, outcome=f"OUTCOME_{r.outcome}", message=r.message)
    if r.basis is not None:
        out["legal_basis"] = _basis_part(r.basis)
    if r.condition:
        out["condition"] = r.condition
    _reasons[key] = (r.basis, out)
    return out


_INF = math.inf


def _value(v: Any) -> Any:
    """What canonical makes of json_value(v), ready for orjson: numbers as floats, integral
    ones as integers, the rest as their repr; dates as ISO text; exact types only."""
    t = v.__class__
    if t is str or t is bool or v is None:
        return v
    if t is float or t is int:
        f = float(v)
        if f.is_integer():
            return int(f)
        if f != f or f == _INF or f == -_INF:
            raise _Unsure
        return orjson.Fragment(repr(f))
    if t is dict:
        return {k: _value(x) for k, x in v.items()}
    if t is list or t is tuple:
        return [_value(x) for x in v]
    if t is dt.date:
        return v.isoformat()
    raise _Unsure


def _reason(r: Reason) -> dict[str, Any]:
    template = _reason_template(r)
    if not r.facts_read:
        return template
    out = template.copy()
    out["facts_read"] = [_fact_read(p, v) for p, v in r.facts_read]
    return out


def _fact_read(path: str, v: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"path": path} if path else {}
    if v is MISSING:
        out["missing"] = True
    else:
        out["value"] = _value(v)
    return out


def decision_canonical(
    d: Decision, decision_id: str, request_id: str, decided_at: dt.datetime
) -> bytes:
    """canonical(decision_json(d, ...)), byte for byte (tests/test_decision_bytes.py), with a
    tenth of its Python."""
    try:
        return orjson.dumps(_quick(d, decision_id, request_id, decided_at), option=_OPTIONS)
    except Exception:  # whatever it is, the reference decides (and raises what it raises)
        return canonical(decision_json(d, decision_id, request_id, decided_at))


def _quick(d: Decision, decision_id: str, request_id: str, decided_at: dt.datetime) -> Any:
    out: dict[str, Any] = {"decision_id": decision_id} if decision_id else {}
    if request_id:
        out["request_id"] = request_id
    if d.item_code:
        out["item_code"] = d.item_code
    out["outcome"] = f"OUTCOME_{d.outcome}"
    if d.reasons:
        out["reasons"] = [_reason(r) for r in d.reasons]
    if d.missing_materials:
        out["missing_materials"] = [_material_part(m) for m in d.missing_materials]
    if d.pending_materials:
        out["pending_materials"] = [_material_part(m) for m in d.pending_materials]
    out["outputs"] = _value(d.outputs)
    out["ruleset"] = _ruleset_part(d.item_code, d.version, d.digest)
    out["as_of_date"] = d.as_of.isoformat()
    out["decided_at"] = _json_timestamp(decided_at)
    if d.review_due:
        out["review_due_date"] = d.review_due.isoformat()
    if d.review_due_estimated:
        out["review_due_date_estimated"] = True
    out["derived_facts"] = _value(d.derived)
    if d.provenance:
        out["provenance"] = _value(_json_provenance(d))
    if d.e_licenses:
        out["e_licenses"] = _value(_json_e_licenses(d))
    if d.remedies is not None:
        out["remedies"] = _remedies_part(d.remedies)
    if d.sourced is not None:
        out["sourced"] = _value(d.sourced.to_json())
    return out
