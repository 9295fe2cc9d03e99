"""Domain objects <-> miaopi.v1 protobuf messages. The only place that knows both."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.decision.catalog import Catalog
from miaopi_server.decision.decide import Decision, Reason
from miaopi_server.errors import CaseInvalid, FieldViolation
from miaopi_server.lang.probes import MISSING
from miaopi_server.rules import fieldtypes
from miaopi_server.rules.model import Field, Item, LegalBasis, Material

OUTCOMES = {
    "APPROVE": pb.OUTCOME_APPROVE,
    "REJECT": pb.OUTCOME_REJECT,
    "MANUAL_REVIEW": pb.OUTCOME_MANUAL_REVIEW,
}
ITEM_TYPES = {
    "行政许可": pb.ITEM_TYPE_LICENSING,
    "行政给付": pb.ITEM_TYPE_BENEFIT_PAYMENT,
    "行政确认": pb.ITEM_TYPE_CONFIRMATION,
    "行政备案": pb.ITEM_TYPE_FILING,
    "行政奖励": pb.ITEM_TYPE_AWARD,
    "行政裁决": pb.ITEM_TYPE_ADJUDICATION,
    "其他行政权力": pb.ITEM_TYPE_OTHER_POWER,
    "公共服务": pb.ITEM_TYPE_PUBLIC_SERVICE,
}
# Field type name -> miaopi.v1.FieldType value, from the registry; a type whose pb_name is not
# in the proto enum stops the server at import rather than failing one GetItem later.
FIELD_TYPES = {t.name: pb.FieldType.Value(t.pb_name) for t in fieldtypes.FIELD_TYPES}
NEEDS = {
    "required": pb.MATERIAL_NEED_REQUIRED,
    "optional": pb.MATERIAL_NEED_OPTIONAL,
    "deferrable": pb.MATERIAL_NEED_DEFERRABLE,
}


def struct_to_dict(s: struct_pb2.Struct, root: str = "facts") -> dict[str, Any]:
    """Struct -> plain dict (numbers stay floats; validation decides what is an integer).

    NaN and infinities have no JSON form (the audit record could not hold them), so they are
    input errors, reported with their path."""
    bad: list[FieldViolation] = []

    def value(v: struct_pb2.Value, path: str) -> Any:
        kind = v.WhichOneof("kind")
        if kind == "struct_value":
            return {k: value(x, f"{path}.{k}") for k, x in v.struct_value.fields.items()}
        if kind == "list_value":
            return [value(x, f"{path}[{i}]") for i, x in enumerate(v.list_value.values)]
        if kind == "number_value":
            if not math.isfinite(v.number_value):
                bad.append(FieldViolation(path[:200], "数字不能是 NaN 或无穷大"))
            return v.number_value
        if kind == "string_value":
            return v.string_value
        if kind == "bool_value":
            return v.bool_value
        return None

    out = {k: value(x, f"{root}.{k}") for k, x in s.fields.items()}
    if bad:
        raise CaseInvalid(bad)
    return out


def _value(v: Any) -> struct_pb2.Value:
    # Scalars directly (most facts read are): ParseDict costs several times as much.
    if isinstance(v, bool):
        return struct_pb2.Value(bool_value=v)
    if isinstance(v, int | float):
        return struct_pb2.Value(number_value=v)
    if isinstance(v, str):
        return struct_pb2.Value(string_value=v)
    out = struct_pb2.Value()
    if isinstance(v, dt.date):
        v = v.isoformat()
    json_format.ParseDict(v, out)
    return out


def _struct(d: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update({k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in d.items()})
    return s


def legal_basis(b: LegalBasis | None) -> pb.LegalBasis | None:
    if b is None:
        return None
    return pb.LegalBasis(id=b.id, law=b.law, article=b.article, citation=b.citation)


def reason(r: Reason) -> pb.Reason:
    msg = pb.Reason(
        rule_id=r.rule_id,
        outcome=OUTCOMES[r.outcome],
        message=r.message,
        condition=r.condition,
        legal_basis=legal_basis(r.basis),
    )
    for path, value in r.facts_read:
        if value is MISSING:
            msg.facts_read.add(path=path, missing=True)
        else:
            msg.facts_read.add(path=path, value=_value(value))
    return msg


def material_ref(m: Material) -> pb.MaterialRef:
    return pb.MaterialRef(id=m.id, name=m.name, e_license=m.e_license)


def decision(
    d: Decision, decision_id: str, request_id: str, decided_at: dt.datetime
) -> pb.Decision:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(decided_at)
    return pb.Decision(
        decision_id=decision_id,
        request_id=request_id,
        item_code=d.item_code,
        outcome=OUTCOMES[d.outcome],
        reasons=[reason(r) for r in d.reasons],
        missing_materials=[material_ref(m) for m in d.missing_materials],
        pending_materials=[material_ref(m) for m in d.pending_materials],
        outputs=_struct(d.outputs),
        ruleset=pb.RulesetRef(item_code=d.item_code, version=d.version, digest=d.digest),
        as_of_date=d.as_of.isoformat(),
        decided_at=ts,
        review_due_date=d.review_due.isoformat() if d.review_due else "",
        review_due_date_estimated=d.review_due_estimated,
        derived_facts=_struct(d.derived),
    )


# -- the same decision as proto3 JSON (what MessageToDict(decision(...)) gives), built from the
# domain objects directly: the audit record stores this form, and protobuf's pure-Python JSON
# printer cost a tenth of a Decide. tests/test_convert.py checks the two agree.


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


def material_json(m: Material) -> dict[str, Any]:
    return _non_empty(id=m.id, name=m.name, e_license=m.e_license)


def _json_timestamp(when: dt.datetime) -> str:
    """RFC 3339 in UTC with 0, 3 or 6 fractional digits, as Timestamp.ToJsonString (which,
    like Timestamp.FromDatetime, takes a naive time as UTC)."""
    when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
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
    return out


def form_field(f: Field) -> pb.FormField:
    msg = pb.FormField(
        path=f.path,
        label=f.label,
        type=FIELD_TYPES[f.kind],
        required=f.required,
        allowed_values=[pb.EnumValue(value=v, label=label) for v, label in f.enum],
        exclusive_min=f.exclusive_min,
        min_length=f.min_length,
        max_length=f.max_length,
        min_items=f.min_items,
        derived=f.derived,
        description=f.description,
    )
    if f.minimum is not None:
        msg.min = f.minimum
    if f.maximum is not None:
        msg.max = f.maximum
    if f.default is not None and not f.derived and f.has_default:
        msg.default_value.CopyFrom(_value(f.default))
    return msg


def item_of(catalog: Catalog, code: str, today: dt.date) -> pb.Item:
    """An item's catalogue entry as of `today`, with every loaded version."""
    current = catalog.current(code, today)
    msg = item(current.item)
    for v in catalog.versions_of(code):
        msg.versions.add(
            version=v.item.version,
            digest=v.item.digest,
            source=v.item.source,
            effective_from=v.item.effective_from.isoformat() if v.item.effective_from else "",
            effective_until=v.item.effective_until.isoformat() if v.item.effective_until else "",
            current=v is current,
        )
    return msg


def item(i: Item) -> pb.Item:
    return pb.Item(
        code=i.code,
        name=i.name,
        type=ITEM_TYPES.get(i.type_name, pb.ITEM_TYPE_UNSPECIFIED),
        type_name=i.type_name,
        department=i.department,
        legal_basis=[legal_basis(b) for b in i.legal_basis.values()],
        time_limit=pb.TimeLimit(
            statutory_working_days=i.statutory_days,
            promised_working_days=i.promised_days,
            on_the_spot=i.on_the_spot,
        ),
        form_fields=[form_field(f) for f in i.fields.values()],
        materials=[
            pb.Material(
                id=m.id,
                name=m.name,
                need=NEEDS[m.need],
                e_license=m.e_license,
                condition=m.when.source if m.when else "",
            )
            for m in i.materials
        ],
        ruleset=pb.RulesetRef(item_code=i.code, version=i.version, digest=i.digest),
    )
