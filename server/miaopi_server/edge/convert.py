"""Domain objects <-> miaopi.v1 protobuf messages. The only place that knows both."""

from __future__ import annotations

import datetime as dt
import math
from functools import lru_cache
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.audit.decision_json import PerObject, json_value
from miaopi_server.audit.record import StoredRecord
from miaopi_server.audit.recorder import Recorded
from miaopi_server.audit.treehead import TreeHead
from miaopi_server.decision.catalog import Catalog
from miaopi_server.decision.decide import Decision, Reason
from miaopi_server.errors import CaseInvalid, FieldViolation
from miaopi_server.lang.probes import MISSING
from miaopi_server.ops.reload import ReloadResult
from miaopi_server.rules import fieldtypes
from miaopi_server.rules.model import Field, Item, LegalBasis, Material
from miaopi_server.rules.remedies import Remedies, remedies_notice

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


def facts_from_struct(s: struct_pb2.Struct, root: str = "facts") -> dict[str, Any]:
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
    out = struct_pb2.Value()
    _set_value(out, v)
    return out


def _set_value(out: struct_pb2.Value, v: Any) -> None:
    # Scalars directly (most facts read are): ParseDict costs several times as much.
    if isinstance(v, bool):
        out.bool_value = v
    elif isinstance(v, int | float):
        out.number_value = v
    elif isinstance(v, str):
        out.string_value = v
    elif isinstance(v, dt.date):
        out.string_value = v.isoformat()
    else:
        json_format.ParseDict(v, out)


def struct(d: dict[str, Any]) -> struct_pb2.Struct:
    """A dict as a Struct, its values as the record's JSON has them (dates at any depth as ISO
    text), so the message and the record never disagree and building it cannot fail."""
    s = struct_pb2.Struct()
    s.update(json_value(d))
    return s


def fill_struct(s: struct_pb2.Struct, d: dict[str, Any]) -> None:
    """s.update(json_value(d)) (tests/test_convert.py compares them), exact scalars set
    directly: Struct.update's isinstance chain in Python cost more than the rest."""
    fields = s.fields
    for k, v in d.items():
        t = v.__class__
        if t is str:
            fields[k].string_value = v
        elif (t is float or t is int) and math.isfinite(v):
            fields[k].number_value = v
        elif t is bool:
            fields[k].bool_value = v
        else:  # None, dates, lists, objects, NaN (json_value raises), subclasses
            s.update({k: json_value(v)})


def _legal_basis(b: LegalBasis) -> pb.LegalBasis:
    return pb.LegalBasis(id=b.id, law=b.law, article=b.article, citation=b.citation)


_basis = PerObject(_legal_basis)


def legal_basis(b: LegalBasis | None) -> pb.LegalBasis | None:
    return None if b is None else _basis(b)


def reason(r: Reason) -> pb.Reason:
    msg = pb.Reason()
    _fill_reason(msg, r)
    return msg


def _fill_reason(msg: pb.Reason, r: Reason) -> None:
    """Fill a message in place (one added to its decision's list: no copy)."""
    msg.rule_id = r.rule_id
    msg.outcome = OUTCOMES[r.outcome]
    msg.message = r.message
    msg.condition = r.condition
    if r.basis is not None:
        msg.legal_basis.CopyFrom(_basis(r.basis))
    read = msg.facts_read
    for path, value in r.facts_read:
        if value is MISSING:
            read.add(path=path, missing=True)
        else:
            _set_value(read.add(path=path).value, value)


def remedies(r: Remedies) -> pb.Remedies:
    return _remedies(r)


def _remedies_message(r: Remedies) -> pb.Remedies:
    return pb.Remedies(
        review_body=r.review_body,
        review_days=r.review_days,
        court=r.court,
        litigation_months=r.litigation_months,
        notice=r.notice,
        legal_basis=[legal_basis(b) for b in r.basis],
    )


def material_ref(m: Material) -> pb.MaterialRef:
    return _material_ref(m)


_remedies = PerObject(_remedies_message)
_material_ref = PerObject(lambda m: pb.MaterialRef(id=m.id, name=m.name, e_license=m.e_license))


def decision_message(
    d: Decision, decision_id: str, request_id: str, decided_at: dt.datetime
) -> pb.Decision:
    msg = pb.Decision()
    _fill_decision(msg, d, decision_id, request_id, decided_at)
    return msg


def _fill_decision(
    msg: pb.Decision, d: Decision, decision_id: str, request_id: str, decided_at: dt.datetime
) -> None:
    """Fill an empty message in place (a response's own decision: nothing built twice)."""
    msg.decision_id = decision_id
    msg.request_id = request_id
    msg.item_code = d.item_code
    msg.outcome = OUTCOMES[d.outcome]
    if d.missing_materials:
        msg.missing_materials.extend([material_ref(m) for m in d.missing_materials])
    if d.pending_materials:
        msg.pending_materials.extend([material_ref(m) for m in d.pending_materials])
    msg.outputs.SetInParent()  # present even when empty, as the record's JSON has it
    if d.outputs:
        fill_struct(msg.outputs, d.outputs)
    msg.ruleset.CopyFrom(_ruleset(d.item_code, d.version, d.digest))
    msg.as_of_date = d.as_of.isoformat()
    msg.decided_at.SetInParent()
    _set_timestamp(msg.decided_at, decided_at)
    if d.review_due:
        msg.review_due_date = d.review_due.isoformat()
    msg.review_due_date_estimated = d.review_due_estimated
    msg.derived_facts.SetInParent()
    if d.derived:
        fill_struct(msg.derived_facts, d.derived)
    for o in d.provenance:
        msg.provenance.add(
            path=o.path,
            origin=o.origin,
            source=o.source,
            record_id=o.record_id,
            fetched_at=o.fetched_at,
            note=o.note,
        )
    for u in d.e_licenses:
        msg.e_licenses.add(
            material_id=u.material_id,
            licence_type=u.licence_type,
            number=u.number,
            fetched_at=u.fetched_at,
        )
    reasons = msg.reasons
    for r in d.reasons:
        _fill_reason(reasons.add(), r)
    if d.remedies is not None:
        msg.remedies.CopyFrom(remedies(d.remedies))
    if d.sourced is not None:
        msg.sourced.SetInParent()  # present even when empty, as the record's JSON has it
        json_format.ParseDict(d.sourced.to_json(), msg.sourced)


@lru_cache(maxsize=4096)
def _ruleset(item_code: str, version: str, digest: str) -> pb.RulesetRef:
    """One message per item version (only ever copied from); bounded, as reloads add more."""
    return pb.RulesetRef(item_code=item_code, version=version, digest=digest)


def tree_head(head: TreeHead) -> pb.TreeHead:
    return pb.TreeHead(
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        timestamp=head.timestamp,
        key_id=head.key_id,
        signature=head.signature,
    )


def receipt(record: StoredRecord) -> pb.Receipt:
    msg = pb.Receipt()
    _fill_receipt(msg, record)
    return msg


def _fill_receipt(msg: pb.Receipt, record: StoredRecord) -> None:
    msg.seq = record.seq
    msg.prev_hash = record.prev_hash
    msg.case_digest = record.case_digest
    msg.node_id = record.node_id
    window = msg.window
    window.SetInParent()
    for k, v in record.window.items():
        setattr(window, k, v)
    msg.record_hash = record.record_hash
    msg.key_id = record.key_id
    msg.signature = record.signature
    msg.inclusion_proof.extend(record.inclusion_proof)
    head = record.tree_head
    if head is not None:
        th = msg.tree_head
        th.SetInParent()
        th.tree_size = head.tree_size
        th.root_hash = head.root_hash
        th.timestamp = head.timestamp
        th.key_id = head.key_id
        th.signature = head.signature


def decision_of(record: StoredRecord) -> pb.Decision:
    """A recorded decision as the window first received it, receipt included."""
    msg = json_format.ParseDict(record.decision, pb.Decision())
    msg.receipt.CopyFrom(receipt(record))
    return msg


def recorded_decision(recorded: Recorded) -> pb.Decision:
    """What Decide returns: the decision just made (built from the domain objects) or, for a
    repeated request_id, the one on record; with its receipt either way."""
    return decide_response(recorded).decision


def decide_response(recorded: Recorded) -> pb.DecideResponse:
    """Decide's response, its decision and receipt filled in place (no message copied)."""
    resp = pb.DecideResponse()
    decided = recorded.decided
    if decided is None:
        json_format.ParseDict(recorded.record.decision, resp.decision)
    else:
        _fill_decision(
            resp.decision,
            decided.decision,
            decided.decision_id,
            recorded.record.request_id,
            decided.decided_at,
        )
    _fill_receipt(resp.decision.receipt, recorded.record)
    return resp


def form_field(f: Field, prefilled_from: str = "") -> pb.FormField:
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
        prefilled_from=prefilled_from,
        required_when=f.required_when.source if f.required_when else "",
        absent_when=f.absent_when.source if f.absent_when else "",
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
        form_fields=[
            form_field(f, i.source_backed[f.path][0].source if f.path in i.source_backed else "")
            for f in i.fields.values()
        ],
        materials=[
            pb.Material(
                id=m.id,
                name=m.name,
                need=NEEDS[m.need],
                e_license=m.e_license,
                condition=m.when.source if m.when else "",
                e_license_type=m.e_license_type,
            )
            for m in i.materials
        ],
        ruleset=pb.RulesetRef(item_code=i.code, version=i.version, digest=i.digest),
        remedies=remedies(remedies_notice(i.remedies)),
    )


def reload_response(r: ReloadResult) -> pb.ReloadRulesetsResponse:
    return pb.ReloadRulesetsResponse(
        applied=r.applied,
        added=r.added,
        removed=r.removed,
        changed=r.changed,
        diagnostics=r.diagnostics,
        catalog_digest=r.catalog_digest,
        set_digest=r.set_digest,
    )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def timestamp(when: dt.datetime) -> timestamp_pb2.Timestamp:
    """Timestamp.FromDatetime (a naive time taken as UTC) without its time-tuple round trip."""
    msg = timestamp_pb2.Timestamp()
    _set_timestamp(msg, when)
    return msg


def _set_timestamp(msg: timestamp_pb2.Timestamp, when: dt.datetime) -> None:
    delta = (when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)) - _EPOCH
    msg.seconds = delta.days * 86400 + delta.seconds
    msg.nanos = delta.microseconds * 1000
