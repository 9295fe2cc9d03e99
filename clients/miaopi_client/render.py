"""Plain-text rendering for the window clerk: Chinese labels with English beside them.

Input is the dict shape of client.py (MessageToDict: fields holding their default value are
absent, hence the .get(..., default) everywhere). Colour is opt-in and only ever wraps the
outcome line, so piped output stays plain text.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO, TypeVar

from .replay import ReplayReport

T = TypeVar("T")

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
    ]
    remedies = i.get("remedies", {})
    if remedies.get("review_body") or remedies.get("court"):
        out.append(
            f"  救济 Remedies:     复议 review {remedies.get('review_body', '?')}"
            f"（{remedies.get('review_days', 0)}日 days）; "
            f"诉讼 court {remedies.get('court', '?')}"
            f"（{remedies.get('litigation_months', 0)}个月 months）"
        )
    out += ["", "表单 Form fields"]
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
    # The server puts the reasons that decided the outcome first; the others follow apart.
    reasons = d.get("reasons", [])
    deciding = [r for r in reasons if r.get("outcome", "") == outcome]
    others = [r for r in reasons if r.get("outcome", "") != outcome]
    out += ["", "理由 Reasons", *_reasons(deciding, 1)]
    if others:
        out += ["", "其他适用的规则 Also matched (did not decide)"]
        out += _reasons(others, len(deciding) + 1)
    if d.get("missing_materials"):
        out += ["", "一次性告知 Missing materials (all at once)"]
        out += _materials(d["missing_materials"])
    if d.get("pending_materials"):
        out += ["", "容缺后补 Pending materials (may be supplied later)"]
        out += _materials(d["pending_materials"])
    if d.get("outputs"):
        out += ["", "输出 Outputs"]
        out += [f"  {k} = {_value(v)}" for k, v in d["outputs"].items()]
    remedies = d.get("remedies")
    if remedies:
        out += ["", "救济途径 Remedies", f"  {remedies.get('notice', '')}"]
        citations = [b.get("citation", "") for b in remedies.get("legal_basis", [])]
        if citations:
            out.append(f"  依据 Basis: {'、'.join(citations)}")
    return "\n".join(out)


def _reasons(reasons: list[dict[str, Any]], first: int) -> list[str]:
    out: list[str] = []
    for n, r in enumerate(reasons, start=first):
        ro = r.get("outcome", "")
        out.append(
            f"  {n}. [{r.get('rule_id', '')}] {OUTCOME_LABELS.get(ro, ro)}: {r.get('message', '')}"
        )
        citation = r.get("legal_basis", {}).get("citation")
        if citation:
            out.append(f"     依据 Basis: {citation}")
        if r.get("facts_read"):
            out.append(f"     事实 Facts: {', '.join(_fact(f) for f in r['facts_read'])}")
    return out


def receipt_line(receipt: dict[str, Any]) -> str:
    """A receipt in one line: "#seq <first 16 hex digits of the record hash> sealed <key id>"."""
    line = f"#{receipt.get('seq', '?')} {receipt.get('record_hash', '')[:16]}"
    if receipt.get("key_id"):
        line += f" 电子印章 sealed {receipt['key_id']}"
    return line


def audit_verification(v: dict[str, Any]) -> str:
    """The result of an audit trail check (client.verify_audit_trail's dict)."""
    if v.get("ok"):
        purged = f" ({v['purged']} with their case purged)" if v.get("purged") else ""
        return f"audit trail OK: {v.get('checked', 0)} records{purged}"
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
    outcomes: dict[str, Counter[str]] = {}
    for r in report.results:
        if r.item_code not in outcomes:  # not setdefault: a Counter per case adds up
            outcomes[r.item_code] = Counter()
        outcomes[r.item_code][r.outcome] += 1
    rows = [
        [
            code,
            str(c["passed"] + c["failed"]),
            str(c["passed"]),
            str(c["failed"]),
            ", ".join(f"{k} {v}" for k, v in sorted(outcomes[code].items())),
        ]
        for code, c in report.items.items()
    ]
    out.append(
        _table(["事项 Item", "案例 Cases", "通过 Passed", "失败 Failed", "结果 Outcomes"], rows)
    )
    out.append("")
    totals = ", ".join(f"{k} {v}" for k, v in report.outcomes.items())
    out.append(f"结果分布 Outcomes: {totals}")
    out.append(
        f"合计 Total: {report.total} 个案例 cases, {report.passed} 通过 passed, "
        f"{report.failed} 失败 failed"
    )
    return "\n".join(out)


# -- progress bars (stderr, terminals only)

PROGRESS_MIN_CASES = 1000


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(
    total: int | Callable[[], int],
    desc: str,
    minimum: int = PROGRESS_MIN_CASES,
    stream: TextIO | None = None,
) -> Any:
    """A tqdm bar on stderr when stderr is a terminal and there are at least `minimum` cases;
    otherwise an object with the same update()/close() that draws nothing, so piped and
    captured output never carries progress noise. `total` may be a function, called only for
    a terminal (e.g. counting a big file's lines)."""
    stream = stream if stream is not None else sys.stderr
    if not stream.isatty():
        return _NoBar()
    if callable(total):
        total = total()
    if total < minimum:
        return _NoBar()
    from tqdm import tqdm

    class Bar(tqdm):  # type: ignore[misc]  # tqdm ships no types
        monitor_interval = 0  # no monitor thread: a thread-free process may fork workers

    return Bar(total=total, desc=desc, unit="case", file=stream, leave=False, dynamic_ncols=True)


def progress(
    items: Iterable[T], total: int, desc: str, minimum: int = PROGRESS_MIN_CASES
) -> Iterator[T]:
    """Iterate `items`, advancing a progress_bar."""
    bar = progress_bar(total, desc, minimum)
    try:
        for x in items:
            yield x
            bar.update(1)
    finally:
        bar.close()


# -- rule authoring reports (`miaopi rules test / explain / diff`)

_MARK = {True: "✓", False: "✗"}


def _read_values(facts: list[dict[str, Any]]) -> str:
    if not facts:
        return "（无 none）"
    return ", ".join(
        f"{f['path']}=（缺失 missing）" if f.get("missing") else f"{f['path']}={_value(f['value'])}"
        for f in facts
    )


_CONNECTIVES = {
    "and": "全部须成立 all must hold (and)",
    "or": "任一成立即可 any one suffices (or)",
    "not and": "整体取反 negated: not (… and …)",
    "not or": "整体取反 negated: not (… or …)",
}


def _condition_lines(c: dict[str, Any], indent: str) -> list[str]:
    out = [
        f"{indent}条件 When: {' '.join(c['condition'].split())}",
        f"{indent}读取 Read: {_read_values(c['facts_read'])}",
    ]
    if c.get("parts"):
        out.append(
            f"{indent}各部分 Parts, {_CONNECTIVES.get(c['connective'], c['connective'])}"
            " — 仅供解释 explanation only:"
        )
        for part in c["parts"]:
            held = "成立 held" if part["held"] else "不成立 did not hold"
            out.append(f"{indent}  {_MARK[part['held']]} {' '.join(part['source'].split())}")
            out.append(f"{indent}      {held}; {_read_values(part['facts_read'])}")
    return out


NEED_WORDS = {
    "required": "必要 required",
    "optional": "非必要 optional",
    "deferrable": "容缺后补 deferrable",
}


def explanation(e: dict[str, Any]) -> str:
    """`miaopi rules explain`: every rule with ✓ matched / ✗ not matched, what it read and
    which parts held, the output tables and materials, then the decision."""
    out = [
        f"{e['item_code']}  {e['item_name']}",
        f"  版本 Version:  {e['version']} ({_short_digest(e['digest'])})",
        f"  依据日期 As of: {e['as_of']}",
        "  ✓ 命中 matched / ✗ 未命中 not matched: 由规则引擎判定 as decided by the rules engine",
        "",
        "规则 Rules",
    ]
    for r in e["rules"]:
        ro = OUTCOME_LABELS.get(r["outcome"], r["outcome"])
        words = "命中 matched" if r["matched"] else "未命中 not matched"
        out.append(f"  {_MARK[r['matched']]} {r['rule_id']}  {words} → {ro}: {r['message']}")
        out += _condition_lines(r, "      ")
        if r.get("never"):
            out.append("      注意 Note: 此条件永远不会成立 this condition can never hold")
        if not r["reference_agrees"]:
            out.append("      警告 WARNING: 参考语义与引擎结论不一致 reference semantics disagree")
    if e["outputs"]:
        out += ["", "输出 Outputs (结果不是 REJECT 时给出 reported unless the outcome is REJECT)"]
        matched_rules = {r["rule_id"] for r in e["rules"] if r["matched"]}
        group = None
        for o in e["outputs"]:
            if (o["rule_id"], o["output"]) != group:
                group = (o["rule_id"], o["output"])
                note = (
                    "规则命中 rule matched"
                    if o["rule_id"] in matched_rules
                    else "规则未命中，不给出 rule not matched: not given"
                )
                out.append(f"  {o['rule_id']}.{o['output']} ({note})")
            chosen = "  ← 采用 selected" if o["selected"] else ""
            if o["condition"] is None:
                out.append(f"    · [{o['index']}] 否则 otherwise → {_value(o['value'])}{chosen}")
                continue
            when = " ".join(o["condition"].split())
            out.append(
                f"    {_MARK[o['matched']]} [{o['index']}] 当 when {when} → {_value(o['value'])}"
                f"{chosen}; 读取 Read: {_read_values(o['facts_read'])}"
            )
            if o["parts"]:
                out += _condition_lines(o, "        ")[2:]
    if e["materials"]:
        out += ["", "材料 Materials (✓ 命中 = 需要但未提交 matched = needed and not submitted)"]
        for m in e["materials"]:
            need = NEED_WORDS.get(m["need"], m["need"])
            if m["need"] == "optional":
                state = "非必要，不检查 optional, not checked"
            elif m["matched"]:
                state = (
                    "未提交，容缺后补 not submitted, may be supplied later"
                    if m["need"] == "deferrable"
                    else "未提交，缺少 not submitted: missing"
                )
            elif m["submitted"]:
                state = "已提交 submitted"
            else:
                state = "本案不需要 not needed for this case"
            mark = "-" if m["need"] == "optional" else _MARK[m["matched"]]
            out.append(f"  {mark} {m['material_id']}  {m['name']} [{need}]: {state}")
            if m["condition"] is not None:
                out += _condition_lines(m, "      ")
    d = e["decision"]
    outcome = d["outcome"]
    out += ["", f"结果 Outcome: {OUTCOME_LABELS.get(outcome, outcome)}"]
    out.append("  理由 Reasons: " + ", ".join(r["rule_id"] for r in d["reasons"]))
    if d["outputs"]:
        out.append(
            "  输出 Outputs: " + ", ".join(f"{k} = {_value(v)}" for k, v in d["outputs"].items())
        )
    if d["missing_materials"]:
        out.append("  缺少材料 Missing materials: " + ", ".join(d["missing_materials"]))
    if d["pending_materials"]:
        out.append("  容缺后补 Pending materials: " + ", ".join(d["pending_materials"]))
    if d.get("review_due"):
        out.append(f"  人工审核截止 Review due: {d['review_due']}")
    if e.get("disagreements"):
        out.append(
            "  警告 WARNING: 参考语义与引擎不一致 reference semantics disagree with the engine on "
            + ", ".join(e["disagreements"])
        )
    return "\n".join(out)


def _pct(x: float) -> str:
    return f"{x:.1f}%"


def rules_test_report(r: dict[str, Any]) -> str:
    """`miaopi rules test`: failures located as file:line, then one row per item."""
    out: list[str] = []
    failures = [(i, f) for i in r["items"] for f in i["failures"]]
    if failures:
        out.append("不符 Mismatches")
        for item, f in failures:
            out.append(f"  {f['case_id']} ({f['file']}:{f['line']}, {item['item_code']})")
            out += [f"    - {m}" for m in f["mismatches"]]
        out.append("")
    rows = [
        [
            i["item_code"],
            i["name"],
            str(i["cases"]),
            str(i["passed"]),
            str(i["failed"]),
            f"{_pct(i['coverage'])} ({i['rules_exercised']}/{i['rules_total']})",
        ]
        for i in r["items"]
    ]
    out.append(
        _table(
            ["事项 Item", "名称 Name", "案例 Cases", "通过 Passed", "失败 Failed", "覆盖 Coverage"],
            rows,
        )
    )
    gaps = [i for i in r["items"] if i["unexercised"] or not i["cases"]]
    if gaps:
        out += ["", "未覆盖的规则 Rules no passing case exercises"]
        for i in gaps:
            if not i["cases"]:
                out.append(
                    f"  {i['item_code']}: 没有案例 no cases next to {', '.join(i['sources'])}"
                )
            if i["unexercised"]:
                out.append(f"  {i['item_code']}: {', '.join(i['unexercised'])}")
    checks = [i for i in r["items"] if i.get("checks")]
    if checks:
        out += ["", "检查了什么 What the cases check (cases per check)"]
        for i in checks:
            shown = ", ".join(f"{k} {n}" for k, n in i["checks"].items())
            out.append(f"  {i['item_code']}: {shown}")
    if r.get("unattributed"):
        out += [
            "",
            f"未归属的案例 Cases of items not in this directory (not run): {r['unattributed']}",
        ]
    out.append("")
    below = [i["item_code"] for i in r["items"] if i["coverage"] < r["min_coverage"]]
    verdict = "通过 OK" if r["ok"] else "失败 FAILED"
    out.append(
        f"合计 Total: {r['cases']} 个案例 cases, {r['passed']} 通过 passed, "
        f"{r['failed']} 失败 failed; 最低覆盖 min coverage {_pct(r['min_coverage'])}"
        + (f", 未达 below: {', '.join(below)}" if below else "")
        + f" — {verdict}"
    )
    return "\n".join(out)


def _diff_value(v: Any) -> str:
    return "（无 absent）" if v is None else _value(v)


def _examples(ids: list[str]) -> str:
    return ", ".join(ids)


def rules_diff_report(r: dict[str, Any]) -> str:
    """`miaopi rules diff`: per item, outcome transitions and output changes with examples."""
    out = [f"规则差异 Rule diff: {r['old']} → {r['new']}, {r['total']} 个案例 cases", ""]
    for i in r["items"]:
        versions = f"{', '.join(i['old_versions']) or '—'} → {', '.join(i['new_versions']) or '—'}"
        out.append(f"{i['item_code']}  {i['name']}  版本 versions {versions}")
        if i["identical"]:
            out.append("  规则文件相同 identical rule files")
        if i["skipped_identical"]:
            out.append(
                f"  未重新判定 not re-decided: {i['skipped_identical']} "
                "(两边由同一规则文件判定，不会变化 same rule file on both sides: cannot change)"
            )
        if i["transitions"]:
            out.append("  结果变化 Outcome changes")
            rows = [
                [f"{t['from']} → {t['to']}", str(t["count"]), _examples(t["examples"])]
                for t in i["transitions"]
            ]
            out.append(_table(["变化 Change", "数量 Count", "例 Examples"], rows, "    "))
        if i["output_changes"]:
            out.append(
                "  输出变化 Output changes (结果未变的案例 cases whose outcome is unchanged)"
            )
            rows = [
                [
                    f"{o['output']} {_diff_value(o['from'])} → {_diff_value(o['to'])}",
                    str(o["count"]),
                    _examples(o["examples"]),
                ]
                for o in i["output_changes"]
            ]
            out.append(_table(["变化 Change", "数量 Count", "例 Examples"], rows, "    "))
        out.append(f"  未变 Unchanged: {i['unchanged']} / {i['cases']}")
        out.append("")
    out.append(
        f"合计 Total: {r['total']} 个案例 cases, {r['outcome_changed']} 结果变化 outcome changed, "
        f"{r['outputs_changed']} 输出变化 outputs changed, {r['unchanged']} 未变 unchanged"
    )
    return "\n".join(out)
