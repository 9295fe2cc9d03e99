"""What a decision notice says, worked out once from a recorded decision; the HTML and the
PDF only lay it out.

The input is the record as the client library and GetDecision give it:

    {"decision": <the decision in proto3 JSON, original field names, receipt included>,
     "case": {"item_code", "facts", "materials"}          # optional: the applicant's block
     "item": {"name": "...", "department": "..."}}        # optional: GetItem's, for the header

Outcomes may carry the enum prefix ("OUTCOME_REJECT") or not ("REJECT"). The applicant's
name and ID number are masked here, so nothing downstream can print them whole.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from miaopi_server.clock import SHANGHAI
from miaopi_server.notice.masking import mask_id_number, mask_name
from miaopi_server.notice.remedies import remedies_notice

ATTACHMENT_NAME = "miaopi-decision.json"  # the decision and receipt embedded in the PDF
QR_SCHEME = "miaopi-notice:v1"

# (fact prefix, label): whose name and ID number the notice shows, masked. A person.
PERSONS = (("applicant", "申请人"), ("operator", "经营者"))
# An organisation: its name and credit code are not personal data and are shown whole.
ORGANISATIONS = (("enterprise", "申请单位"),)
SEVERITY = {"REJECT": 0, "MANUAL_REVIEW": 1, "APPROVE": 2}


class NoticeInputError(ValueError):
    """The record is not a decision a notice can be made of."""


@dataclass(frozen=True)
class NoticeReason:
    message: str
    citation: str
    outcome: str


@dataclass(frozen=True)
class Seal:
    """The e-seal as printed: the key that sealed the record and where its signature is."""

    key_id: str
    reference: str  # "<key id>/sth/<tree size>/<root hash>" or "<key id>/sig/<digest>"
    record_hash: str
    described: str  # the reference in words


@dataclass(frozen=True)
class Notice:
    kind: str  # "approve", "accept" (manual review), "refuse", "inform" (materials missing)
    title: str
    authority: str
    item_code: str
    item_name: str
    applicant: tuple[tuple[str, str], ...]  # (label, value already masked)
    outcome_label: str
    summary: str
    reasons: tuple[NoticeReason, ...]
    missing: tuple[str, ...]
    pending: tuple[str, ...]
    review_due: str
    remedies: str  # "" unless refused
    ruleset_version: str
    ruleset_digest: str
    decision_id: str
    decided_at: str  # Asia/Shanghai, as printed
    as_of_date: str
    seal: Seal
    qr_payload: str
    attachment: bytes  # JSON of {"decision": ...} exactly as given: verify-receipt reads it


def notice_of(record: Mapping[str, Any]) -> Notice:
    """The notice for `record` (see the module docstring for its shape)."""
    decision = record.get("decision") if isinstance(record, Mapping) else None
    if not isinstance(decision, Mapping):
        raise NoticeInputError('not a recorded decision: expected {"decision": {...}}')
    receipt = decision.get("receipt")
    if not isinstance(receipt, Mapping) or not receipt.get("record_hash"):
        raise NoticeInputError("the decision has no receipt: only a recorded decision is sealed")
    decision_id = _str(decision.get("decision_id"))
    if not decision_id:
        raise NoticeInputError("the decision has no decision_id")
    outcome = _outcome(decision.get("outcome"))
    if outcome not in SEVERITY:
        raise NoticeInputError(f"the decision has no known outcome: {decision.get('outcome')!r}")
    item = _map(record.get("item"))
    missing = _material_names(decision.get("missing_materials"))
    kind, title, outcome_label = _kind(outcome, decision)
    ruleset = _map(decision.get("ruleset"))
    seal = _seal(receipt)
    return Notice(
        kind=kind,
        title=title,
        authority=_str(item.get("department")),
        item_code=_str(decision.get("item_code")),
        item_name=_str(item.get("name")),
        applicant=_applicant(record.get("case")),
        outcome_label=outcome_label,
        summary=_summary(kind, _str(decision.get("review_due_date"))),
        reasons=_reasons(decision.get("reasons")),
        missing=missing,
        pending=_material_names(decision.get("pending_materials")),
        review_due=_str(decision.get("review_due_date")),
        remedies=remedies_notice(decision) if outcome == "REJECT" else "",
        ruleset_version=_str(ruleset.get("version")),
        ruleset_digest=_str(ruleset.get("digest")),
        decision_id=decision_id,
        decided_at=_shanghai(_str(decision.get("decided_at"))),
        as_of_date=_str(decision.get("as_of_date")),
        seal=seal,
        qr_payload=f"{QR_SCHEME};decision={decision_id};hash={seal.record_hash};seal={seal.reference}",
        attachment=json.dumps({"decision": decision}, ensure_ascii=False, indent=1).encode(),
    )


def _kind(outcome: str, decision: Mapping[str, Any]) -> tuple[str, str, str]:
    if outcome == "APPROVE":
        return "approve", "准予批准通知书", "准予批准（秒批）"
    if outcome == "MANUAL_REVIEW":
        return "accept", "受理通知书", "已受理，转人工审核"
    given = decision.get("reasons")
    deciding = [r for r in _ordered(given) if _outcome(r.get("outcome")) == "REJECT"]
    only_materials = all(_str(r.get("rule_id")).startswith("material:") for r in deciding)
    if decision.get("missing_materials") and only_materials:
        return "inform", "一次性告知书", "材料不齐全，不予批准（请补齐后重新申请）"
    return "refuse", "不予批准决定书", "不予批准"


def _summary(kind: str, review_due: str) -> str:
    if kind == "approve":
        return "经审查，您的申请符合法定条件，决定准予批准。"
    if kind == "accept":
        due = f"，审核期限至{review_due}" if review_due else ""
        return f"您的申请已受理，需经人工审核后作出决定{due}。"
    if kind == "inform":
        return "经审查，您的申请材料不齐全。现一次性告知需要补正的全部材料，请补齐后重新申请。"
    return "经审查，您的申请不符合法定条件，决定不予批准。理由及依据如下。"


def _ordered(reasons: Any) -> list[Mapping[str, Any]]:
    """The reasons, deciding ones first (REJECT, then MANUAL_REVIEW, then APPROVE), each group
    in the order given."""
    given = [r for r in reasons if isinstance(r, Mapping)] if isinstance(reasons, list) else []
    return sorted(given, key=lambda r: SEVERITY.get(_outcome(r.get("outcome")), 3))


# A disagreement between the window's entry and shared data names both values in the sealed
# reason (the reviewer needs them), and those values may identify the applicant (a disability
# certificate number is the ID number plus two digits): the notice says what happened, not them.
DATA_WORDING = {
    "data:conflict:": "数据不一致：窗口填写的信息与共享数据记录不一致，转人工核验",
    "data:corrected:": "窗口填写的信息与共享数据记录不一致，已以共享数据为准",
}


def _reasons(reasons: Any) -> tuple[NoticeReason, ...]:
    out = []
    for r in _ordered(reasons):
        basis = _map(r.get("legal_basis"))
        citation = _str(basis.get("citation")) or _join(basis.get("law"), basis.get("article"))
        out.append(NoticeReason(_printed(r), citation, _outcome(r.get("outcome"))))
    return tuple(out)


def _printed(reason: Mapping[str, Any]) -> str:
    rule_id = _str(reason.get("rule_id"))
    for prefix, wording in DATA_WORDING.items():
        if rule_id.startswith(prefix):
            return wording
    return _str(reason.get("message"))


def _join(law: Any, article: Any) -> str:
    return f"《{law}》{_str(article)}" if _str(law) else ""


def _material_names(materials: Any) -> tuple[str, ...]:
    if not isinstance(materials, list):
        return ()
    return tuple(
        _str(m.get("name")) or _str(m.get("id")) for m in materials if isinstance(m, Mapping)
    )


def _applicant(case: Any) -> tuple[tuple[str, str], ...]:
    facts = case.get("facts") if isinstance(case, Mapping) else None
    if not isinstance(facts, Mapping):
        return ()
    lines: list[tuple[str, str]] = []
    for prefix, label in PERSONS:
        name, number = _fact(facts, f"{prefix}.name"), _fact(facts, f"{prefix}.id_number")
        if name:
            lines.append((label, mask_name(name)))
        if number:
            lines.append(("公民身份号码", mask_id_number(number)))
    for prefix, label in ORGANISATIONS:
        name, code = _fact(facts, f"{prefix}.name"), _fact(facts, f"{prefix}.uscc")
        if name:
            lines.append((label, name))
        if code:
            lines.append(("统一社会信用代码", code))
    return tuple(lines)


def _fact(facts: Mapping[str, Any], path: str) -> str:
    """A string fact, nested ({"applicant": {"name"}}) or flat ({"applicant.name"})."""
    value: Any = facts.get(path)
    if value is None:
        value = facts
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    return value.strip() if isinstance(value, str) else ""


def _seal(receipt: Mapping[str, Any]) -> Seal:
    key_id, record_hash = _str(receipt.get("key_id")), _str(receipt.get("record_hash"))
    head = receipt.get("tree_head")
    if isinstance(head, Mapping) and head.get("root_hash"):
        size, root = _str(head.get("tree_size")), _str(head.get("root_hash"))
        return Seal(
            key_id,
            f"{key_id}/sth/{size}/{root}",
            record_hash,
            f"审计日志签名树头（前{size}条记录）根哈希 {root}",
        )
    try:
        signature = base64.b64decode(_str(receipt.get("signature")), validate=True)
    except ValueError:
        signature = b""
    digest = hashlib.sha256(signature).hexdigest()[:32]
    return Seal(key_id, f"{key_id}/sig/{digest}", record_hash, f"记录签名摘要 {digest}")


def _shanghai(rfc3339: str) -> str:
    try:
        at = dt.datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    except ValueError:
        return rfc3339
    if at.tzinfo is None:
        return rfc3339
    return at.astimezone(SHANGHAI).strftime("%Y年%m月%d日 %H:%M:%S（北京时间）")


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _outcome(value: Any) -> str:
    return value.removeprefix("OUTCOME_") if isinstance(value, str) else ""


def _str(value: Any) -> str:
    return str(value).strip() if isinstance(value, str | int) and value != "" else ""
