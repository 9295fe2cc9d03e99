"""Plain-text rendering for the window clerk: Chinese labels with English beside them.

Input is the dict shape of client.py (MessageToDict: fields holding their default value are
absent, hence the .get(..., default) everywhere). Colour is opt-in and only ever wraps the
outcome line, so piped output stays plain text.
"""

from __future__ import annotations

import json
import os
import unicodedata
from typing import Any, TextIO

from .replay import ReplayReport

OUTCOME_LABELS = {
    "APPROVE": "通过 APPROVE",
    "REJECT": "不予批准 REJECT",
    "MANUAL_REVIEW": "转人工审核 MANUAL_REVIEW",
}
NEED_LABELS = {
    "MATERIAL_NEED_REQUIRED": "必要 required",
    "MATERIAL_NEED_OPTIONAL": "非必要 optional",
    "MATERIAL_NEED_DEFERRABLE": "容缺后补 deferrable",
}
_COLOURS = {"APPROVE": "32", "REJECT": "31", "MANUAL_REVIEW": "33"}  # green, red, yellow


def use_colour(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (no-color.org)."""
    return stream.isatty() and "NO_COLOR" not in os.environ


def _width(s: str) -> int:
    """Terminal columns: CJK characters take two, so tables line up."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _pad(s: str, width: int) -> str:
    return s + " " * max(width - _width(s), 0)


def _table(headers: list[str], rows: list[list[str]], indent: str = "") -> str:
    widths = [max(_width(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(
        indent + "  ".join(_pad(c, w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in lines
    )


def _value(v: Any) -> str:
    """A fact or output value as a clerk reads it: 90 not 90.0, text without quotes."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)


def _enum(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).lower()


def _short_digest(digest: str) -> str:
    algo, _, hexdigest = digest.partition(":")
    return f"{algo}:{hexdigest[:12]}" if hexdigest else digest


def _ruleset(r: dict[str, Any]) -> str:
    return f"{r.get('version', '?')} ({_short_digest(r.get('digest', ''))})"


def item_list(items: list[dict[str, Any]]) -> str:
    """The catalogue as a table."""
    if not items:
        return "没有事项 No items."
    rows = [
        [
            i.get("code", ""),
            i.get("name", ""),
            i.get("type_name", ""),
            i.get("department", ""),
            i.get("ruleset", {}).get("version", ""),
        ]
        for i in items
    ]
    return _table(["编码 Code", "名称 Name", "类型 Type", "部门 Department", "版本 Version"], rows)


def _constraints(f: dict[str, Any]) -> str:
    parts: list[str] = []
    if f.get("derived"):
        parts.append("派生 derived")
    if "min" in f or "max" in f:
        lo = f"{_value(f['min'])} {'<' if f.get('exclusive_min') else '≤'} " if "min" in f else ""
        hi = f" ≤ {_value(f['max'])}" if "max" in f else ""
        parts.append(f"{lo}x{hi}")
    if f.get("min_length") or f.get("max_length"):
        parts.append(f"长度 length {f.get('min_length', 0)}-{f.get('max_length', '')}")
    if f.get("min_items"):
        parts.append(f"至少 min items {f['min_items']}")
    if f.get("allowed_values"):
        parts.append(
            " | ".join(f"{v.get('value', '')}={v.get('label', '')}" for v in f["allowed_values"])
        )
    if "default_value" in f:
        parts.append(f"默认 default {_value(f['default_value'])}")
    return "; ".join(parts)


def item(i: dict[str, Any]) -> str:
    """One item: what a window needs to build the form and the material checklist."""
    tl = i.get("time_limit", {})
    days = "个工作日 working days"
    limit = f"法定 statutory {tl.get('statutory_working_days', 0)} {days}; " + (
        "即办件 on the spot"
        if tl.get("on_the_spot")
        else f"承诺 promised {tl.get('promised_working_days', 0)} {days}"
    )
    out = [
        f"{i.get('code', '')}  {i.get('name', '')}",
        f"  类型 Type:         {i.get('type_name', '')}",
        f"  部门 Department:   {i.get('department', '')}",
        f"  规则 Ruleset:      {_ruleset(i.get('ruleset', {}))}",
        f"  时限 Time limit:   {limit}",
        "",
        "表单 Form fields",
    ]
    fields = [
        [
            f.get("path", ""),
            f.get("label", ""),
            _enum(f.get("type", ""), "FIELD_TYPE_"),
            "必填 required" if f.get("required") else "",
            _constraints(f),
        ]
        for f in i.get("form_fields", [])
    ]
    out.append(
        _table(
            ["路径 Path", "名称 Label", "类型 Type", "必填 Req.", "约束 Constraints"], fields, "  "
        )
    )
    out += ["", "材料 Materials"]
    mats = [
        [
            m.get("id", ""),
            m.get("name", ""),
            NEED_LABELS.get(m.get("need", ""), ""),
            "电子证照 e-license" if m.get("e_license") else "",
            f"当 when {m['condition']}" if m.get("condition") else "",
        ]
        for m in i.get("materials", [])
    ]
    out.append(
        _table(["编号 ID", "名称 Name", "要求 Need", "免证 E-license", "条件 When"], mats, "  ")
    )
    out += ["", "设定依据 Legal basis"]
    out += [f"  - {b.get('citation', '')}" for b in i.get("legal_basis", [])]
    return "\n".join(out)


def _fact(f: dict[str, Any]) -> str:
    if f.get("missing"):
        return f"{f.get('path', '')}=（缺失 missing）"
    return f"{f.get('path', '')}={_value(f.get('value'))}"


def _materials(refs: list[dict[str, Any]]) -> list[str]:
    return [
        f"  - {m.get('id', '')}  {m.get('name', '')}"
        + ("  [可用电子证照 e-license accepted]" if m.get("e_license") else "")
        for m in refs
    ]


def decision(d: dict[str, Any], colour: bool = False) -> str:
    """A decision as the clerk reads it to the applicant: outcome first, then why."""
    outcome = d.get("outcome", "")
    head = f"结果 Outcome: {OUTCOME_LABELS.get(outcome, outcome)}"
    if colour and outcome in _COLOURS:
        head = f"\x1b[1;{_COLOURS[outcome]}m{head}\x1b[0m"
    out = [head, ""]
    due = d.get("review_due_date")
    if due:
        estimated = " (estimated 预估)" if d.get("review_due_date_estimated") else ""
        out.append(f"人工审核截止 Review due: {due}{estimated}")
    out += [
        f"事项 Item:         {d.get('item_code', '')}",
        f"依据日期 As of:    {d.get('as_of_date', '')}",
        f"规则 Ruleset:      {_ruleset(d.get('ruleset', {}))}",
        f"决定编号 Decision: {d.get('decision_id', '')}",
    ]
    if d.get("request_id"):
        out.append(f"请求编号 Request:  {d['request_id']}")
    receipt = d.get("receipt")
    if receipt:  # only a server records decisions; in-process ones have none
        out.append(f"存证 Receipt:      {receipt_line(receipt)}")
    out += ["", "理由 Reasons"]
    for n, r in enumerate(d.get("reasons", []), start=1):
        ro = r.get("outcome", "")
        out.append(
            f"  {n}. [{r.get('rule_id', '')}] {OUTCOME_LABELS.get(ro, ro)}: {r.get('message', '')}"
        )
        citation = r.get("legal_basis", {}).get("citation")
        if citation:
            out.append(f"     依据 Basis: {citation}")
        if r.get("facts_read"):
            out.append(f"     事实 Facts: {', '.join(_fact(f) for f in r['facts_read'])}")
    if d.get("missing_materials"):
        out += ["", "一次性告知 Missing materials (all at once)"]
        out += _materials(d["missing_materials"])
    if d.get("pending_materials"):
        out += ["", "容缺后补 Pending materials (may be supplied later)"]
        out += _materials(d["pending_materials"])
    if d.get("outputs"):
        out += ["", "输出 Outputs"]
        out += [f"  {k} = {_value(v)}" for k, v in d["outputs"].items()]
    return "\n".join(out)


def receipt_line(receipt: dict[str, Any]) -> str:
    """A receipt in one line: "#seq <first 16 hex digits of the record hash> sealed <key id>"."""
    line = f"#{receipt.get('seq', '?')} {receipt.get('record_hash', '')[:16]}"
    if receipt.get("key_id"):
        line += f" 电子印章 sealed {receipt['key_id']}"
    return line


def audit_verification(v: dict[str, Any]) -> str:
    """The result of an audit trail check (client.verify_audit_trail's dict)."""
    if v.get("ok"):
        return f"audit trail OK: {v.get('checked', 0)} records"
    return f"audit trail BROKEN at seq {v.get('first_bad_seq', 0)}: {v.get('reason', '')}"


def replay_summary(report: ReplayReport, source: str = "") -> str:
    """Each mismatch located as source:line, then the per-item table and the totals."""
    out: list[str] = []
    if report.failures:
        out.append("不符 Mismatches")
        for r in report.failures:
            where = f"{source}:{r.line}" if source else f"line {r.line}"
            out.append(f"  {r.case_id} ({where}, {r.item_code})")
            out += [f"    - {m}" for m in r.mismatches]
        out.append("")
    rows = [[code, str(c["passed"]), str(c["failed"])] for code, c in report.items.items()]
    out.append(_table(["事项 Item", "通过 Passed", "失败 Failed"], rows))
    out.append("")
    outcomes = ", ".join(f"{k} {v}" for k, v in report.outcomes.items())
    out.append(f"结果分布 Outcomes: {outcomes}")
    out.append(
        f"合计 Total: {report.total} 个案例 cases, {report.passed} 通过 passed, "
        f"{report.failed} 失败 failed"
    )
    return "\n".join(out)
