"""The four sample policies written for two peer rule engines, for the engine benchmark.

- zen-engine (GoRules): one JDM graph per item, input -> decision table (hit policy
  `collect`) -> output. Each table row is one policy row (an output band is one row per band,
  as decision tables write it; a material is one row per material) with outputs rule, outcome
  and amount. Evaluated with `ZenEngine.evaluate(key, context)` on a static loader (the
  package's fastest single-decision call here; `ZenDecision.evaluate` was ~20x slower).
- rule-engine: one `rule_engine.Rule` per table row, the same rows, evaluated one after the
  other with `Rule.matches(context)`.

Both peers get a *prepared* context, built outside their timed loops by `prepare`: the case's
facts with defaults filled in and derived facts added (`applicant.age`, `operator.age`,
`enterprise.uscc_kind`, `enterprise.uscc_checksum_ok`, computed with miaopi's own identity
functions) plus the materials list. miaopi's own timed call does all of that itself (validation,
defaults, derivation), so the comparison favours the peers.

Inside the timed loop each peer evaluates its rows and `aggregate` turns the matched rows into
(outcome, monthly amount, matched rule ids) with the rule of shared/items/README.md: REJECT if
any row rejects, else MANUAL_REVIEW if any asks for review, else APPROVE if any approves, else
MANUAL_REVIEW; the amount only when the outcome is not REJECT.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from miaopi_server.rules.identity import age_on, parse_credit_code, parse_resident_id
from tests.case_generator import BUSINESS, DEVICE, DISABILITY, SENIOR

REJECT, REVIEW, APPROVE, PENDING = "REJECT", "MANUAL_REVIEW", "APPROVE", "PENDING"
Result = tuple[str, Any, frozenset[str]]  # outcome, monthly amount or None, matched rule ids


@dataclass(frozen=True)
class Row:
    rule: str
    outcome: str
    zen: dict[str, str]  # zen column -> unary cell
    expr: str  # rule-engine expression
    amount: int | None = None


def _lists(rulesets: Path) -> dict[str, list[str]]:
    data = yaml.safe_load((rulesets / "lists" / "business_scope.yaml").read_text("utf-8"))
    out = {name: list(spec.get("values", [])) for name, spec in data["lists"].items()}
    for name, spec in data["lists"].items():
        for part in spec.get("union", []):
            out[name] += out[part]
    return out


def _q(values: list[str]) -> str:
    return json.dumps(values, ensure_ascii=False)


def _material(
    m: str, when_zen: dict[str, str] | None = None, when_expr: str = "", outcome: str = REJECT
) -> Row:
    zen = {"materials": f'not(contains($, "{m}"))', **(when_zen or {})}
    expr = f'"{m}" not in materials'
    if when_expr:
        expr = f"{when_expr} and {expr}"
    return Row(f"material:{m}", outcome, zen, expr)


def policies(rulesets: Path) -> dict[str, tuple[dict[str, str], list[Row]]]:
    """item code -> (zen input columns {column id: field expression}, rows)."""
    lists = _lists(rulesets)
    agent = ({"agent": "true"}, "application.by_agent")
    senior_cols = {
        "age": "applicant.age",
        "hukou": "applicant.hukou_region",
        "deceased": "applicant.deceased",
        "receiving": "applicant.receiving_allowance",
        "agent": "application.by_agent",
        "materials": "materials",
    }
    local = '"440605"'
    senior = [
        Row("under_70", REJECT, {"age": "< 70"}, "applicant.age < 70"),
        Row(
            "not_local_hukou",
            REJECT,
            {"hukou": f"$ != {local}"},
            f"applicant.hukou_region != {local}",
        ),
        Row("deceased", REJECT, {"deceased": "true"}, "applicant.deceased"),
        Row("already_receiving", REJECT, {"receiving": "true"}, "applicant.receiving_allowance"),
        Row("very_old_verify", REVIEW, {"age": ">= 105"}, "applicant.age >= 105"),
        *(
            Row(
                "eligible",
                APPROVE,
                {"age": zen_band, "hukou": local},
                f"{expr_band} and applicant.hukou_region == {local}",
                amount,
            )
            for zen_band, expr_band, amount in (
                (">= 100", "applicant.age >= 100", 300),
                ("[90..100)", "applicant.age >= 90 and applicant.age < 100", 200),
                ("[80..90)", "applicant.age >= 80 and applicant.age < 90", 100),
                ("[70..80)", "applicant.age >= 70 and applicant.age < 80", 30),
            )
        ),
        _material("id_card"),
        _material("hukou_book"),
        _material("bank_account"),
        _material("agent_id_card", *agent),
        _material("power_of_attorney", *agent),
    ]

    disability_cols = {
        "hukou": "applicant.hukou_region",
        "status": "household.status",
        "kind": "disability.certificate_type",
        "expired": "date(disability.certificate_expiry) < date(application.date)",
        "receiving": "applicant.receiving_subsidy",
        "agent": "application.by_agent",
        "materials": "materials",
    }
    expired = "disability.certificate_expiry < application.date"  # ISO dates sort as text
    disability = [
        Row(
            "not_local_hukou",
            REJECT,
            {"hukou": f"$ != {local}"},
            f"applicant.hukou_region != {local}",
        ),
        Row("not_low_income", REJECT, {"status": '"none"'}, 'household.status == "none"'),
        Row("tekun_supported", REJECT, {"status": '"tekun"'}, 'household.status == "tekun"'),
        Row("certificate_expired", REJECT, {"expired": "true"}, expired),
        Row("already_receiving", REJECT, {"receiving": "true"}, "applicant.receiving_subsidy"),
        Row(
            "veteran_check",
            REVIEW,
            {"kind": '"veteran_card"'},
            'disability.certificate_type == "veteran_card"',
        ),
        Row(
            "eligible",
            APPROVE,
            {"hukou": local, "status": '"dibao"', "expired": "false"},
            f'applicant.hukou_region == {local} and household.status == "dibao"'
            f" and not ({expired})",
            200,
        ),
        Row(
            "eligible",
            APPROVE,
            {"hukou": local, "status": '"dibao_edge"', "expired": "false"},
            f'applicant.hukou_region == {local} and household.status == "dibao_edge"'
            f" and not ({expired})",
            150,
        ),
        _material("id_card"),
        _material("hukou_book"),
        _material(
            "disability_card",
            {"kind": '"disability_card"'},
            'disability.certificate_type == "disability_card"',
        ),
        _material(
            "veteran_card",
            {"kind": '"veteran_card"'},
            'disability.certificate_type == "veteran_card"',
        ),
        _material(
            "household_certificate",
            {"status": '"dibao", "dibao_edge"'},
            'household.status in ["dibao", "dibao_edge"]',
        ),
        _material("bank_account"),
        _material("agent_id_card", *agent),
        _material("power_of_attorney", *agent),
    ]

    business_cols = {
        "age": "operator.age",
        "income": "operator.own_labor_income",
        "civil": "operator.is_civil_servant",
        "region": "premises.region",
        "composition": "business.composition",
        "members": "business.family_members",
        "name": "business.name",
        "scope": "business.scope",
        "proof": "premises.proof",
        "agent": "application.by_agent",
        "materials": "materials",
    }
    forbidden = ["中国", "中华", "全国", "国家", "国际"]
    company = ["公司", "企业", "合作社"]
    forms = ["厂", "店", "馆", "部", "行", "中心"]
    prefixes = ["南海区", "佛山市南海区"]
    name = "business.name"

    # zen table cells silently never match when a cell holds `or` (measured with zen-engine
    # 2.1.3: `$ != null and (a or b)` is false for every input), so word lists use some/none.
    def zen_any(fn: str, words: list[str]) -> str:
        return f"some({_q(words)}, {fn}($, #))"

    def zen_none(fn: str, words: list[str]) -> str:
        return f"none({_q(words)}, {fn}($, #))"

    def expr_any(method: str, words: list[str]) -> str:
        if method == "contains":
            return "(" + " or ".join(f'"{w}" in {name}' for w in words) + ")"
        return "(" + " or ".join(f'{name}.{method}("{w}")' for w in words) + ")"

    scope = "business.scope"
    business = [
        Row("under_16", REJECT, {"age": "< 16"}, "operator.age < 16"),
        Row(
            "minor_without_own_income",
            REJECT,
            {"age": "[16..18)", "income": "false"},
            "operator.age >= 16 and operator.age < 18 and not operator.own_labor_income",
        ),
        Row(
            "minor_with_own_income",
            REVIEW,
            {"age": "[16..18)", "income": "true"},
            "operator.age >= 16 and operator.age < 18 and operator.own_labor_income",
        ),
        Row("civil_servant", REJECT, {"civil": "true"}, "operator.is_civil_servant"),
        Row(
            "premises_outside_district",
            REJECT,
            {"region": f"$ != {local}"},
            f"premises.region != {local}",
        ),
        Row(
            "family_members_missing",
            REJECT,
            {"composition": '"family"', "members": "len($) == 0"},
            'business.composition == "family" and business.family_members.length == 0',
        ),
        Row(
            "name_forbidden_words",
            REJECT,
            {"name": "$ != null and " + zen_any("contains", forbidden)},
            f"{name} != null and {expr_any('contains', forbidden)}",
        ),
        Row(
            "name_not_hanzi",
            REJECT,
            {"name": r'$ != null and not(matches($, "^\p{Han}+$"))'},
            f'{name} != null and not {name} =~ "^[\\u4e00-\\u9fff]+$"',
        ),
        Row(
            "name_company_words",
            REJECT,
            {"name": "$ != null and " + zen_any("contains", company)},
            f"{name} != null and {expr_any('contains', company)}",
        ),
        Row(
            "name_bad_form",
            REJECT,
            {"name": "$ != null and " + zen_none("endsWith", forms)},
            f"{name} != null and not {expr_any('ends_with', forms)}",
        ),
        Row(
            "name_no_region",
            REJECT,
            {"name": "$ != null and " + zen_none("startsWith", prefixes)},
            f"{name} != null and not {expr_any('starts_with', prefixes)}",
        ),
        Row(
            "scope_prohibited",
            REJECT,
            {"scope": f"some($, # in {_q(lists['prohibited_scope'])})"},
            f"[s for s in {scope} if s in {_q(lists['prohibited_scope'])}]",
        ),
        Row(
            "scope_licensed",
            REVIEW,
            {"scope": f"some($, # in {_q(lists['licensed_scope'])})"},
            f"[s for s in {scope} if s in {_q(lists['licensed_scope'])}]",
        ),
        Row(
            "scope_non_standard",
            REVIEW,
            {"scope": f"some($, not(# in {_q(lists['standard_scope'])}))"},
            f"[s for s in {scope} if s not in {_q(lists['standard_scope'])}]",
        ),
        Row(
            "eligible",
            APPROVE,
            {"age": ">= 18", "region": local},
            f"operator.age >= 18 and premises.region == {local}",
        ),
        _material("id_card"),
        _material("application_form"),
        _material("property_certificate", {"proof": '"owned"'}, 'premises.proof == "owned"'),
        _material("lease_contract", {"proof": '"leased"'}, 'premises.proof == "leased"'),
        _material("free_use_certificate", {"proof": '"free_use"'}, 'premises.proof == "free_use"'),
        _material(
            "family_relationship_proof",
            {"composition": '"family"'},
            'business.composition == "family"',
            outcome=PENDING,
        ),
        _material("agent_id_card", *agent),
        _material("power_of_attorney", *agent),
    ]

    device_cols = {
        "own": "enterprise.sells_own_registered_products",
        "scope": "enterprise.business_scope",
        "kind": "enterprise.uscc_kind",
        "region": "premises.region",
        "area": "premises.area_sqm",
        "outsourced": "warehouse.outsourced",
        "warehouse": "warehouse.area_sqm",
        "warehouse_ok": "warehouse.outsourced or (warehouse.area_sqm != null"
        " and warehouse.area_sqm >= 20)",
        "qualified": "quality_manager.qualified",
        "checksum": "enterprise.uscc_checksum_ok",
        "categories": "products.categories",
        "agent": "application.by_agent",
        "materials": "materials",
    }
    class2 = '"第二类医疗器械销售"'
    device = [
        Row(
            "registrant_own_products",
            REJECT,
            {"own": "true"},
            "enterprise.sells_own_registered_products",
        ),
        Row(
            "scope_lacks_class2",
            REJECT,
            {"scope": f"not(contains($, {class2}))"},
            f"{class2} not in enterprise.business_scope",
        ),
        Row(
            "not_enterprise",
            REJECT,
            {"kind": 'not($ in ["91", "92"])'},
            'enterprise.uscc_kind not in ["91", "92"]',
        ),
        Row(
            "premises_outside_city",
            REJECT,
            {"region": 'not(startsWith($, "4406"))'},
            'not premises.region.starts_with("4406")',
        ),
        Row("premises_too_small", REJECT, {"area": "< 40"}, "premises.area_sqm < 40"),
        Row(
            "warehouse_too_small",
            REJECT,
            {"outsourced": "false", "warehouse": "$ == null or $ < 20"},
            "not warehouse.outsourced and (warehouse.area_sqm == null or warehouse.area_sqm < 20)",
        ),
        Row("manager_unqualified", REJECT, {"qualified": "false"}, "not quality_manager.qualified"),
        Row(
            "credit_code_checksum", REVIEW, {"checksum": "false"}, "not enterprise.uscc_checksum_ok"
        ),
        Row(
            "ivd_reagents",
            REVIEW,
            {"categories": 'contains($, "ivd_reagents")'},
            '"ivd_reagents" in products.categories',
        ),
        Row(
            "eligible",
            APPROVE,
            {
                "scope": f"contains($, {class2})",
                "kind": '"91", "92"',
                "region": 'startsWith($, "4406")',
                "area": ">= 40",
                "warehouse_ok": "true",
                "qualified": "true",
                "own": "false",
            },
            f'{class2} in enterprise.business_scope and enterprise.uscc_kind in ["91", "92"]'
            ' and premises.region.starts_with("4406") and premises.area_sqm >= 40'
            " and (warehouse.outsourced or (warehouse.area_sqm != null"
            " and warehouse.area_sqm >= 20))"
            " and quality_manager.qualified and not enterprise.sells_own_registered_products",
        ),
        *(
            _material(m)
            for m in (
                "filing_form",
                "business_license",
                "id_cards",
                "qualification_certificate",
                "premises_proof",
                "quality_manual_toc",
            )
        ),
        _material("warehouse_service_contract", {"outsourced": "true"}, "warehouse.outsourced"),
        _material("power_of_attorney", *agent),
    ]
    return {
        SENIOR: (senior_cols, senior),
        DISABILITY: (disability_cols, disability),
        BUSINESS: (business_cols, business),
        DEVICE: (device_cols, device),
    }


# Defaults filled in by `prepare`: optional booleans (`default: false`) and lists (always
# present; an omitted list is empty).
DEFAULTS: dict[str, tuple[str, ...]] = {
    SENIOR: ("applicant.deceased", "applicant.receiving_allowance", "application.by_agent"),
    DISABILITY: ("applicant.receiving_subsidy", "application.by_agent"),
    BUSINESS: ("operator.is_civil_servant", "operator.own_labor_income", "application.by_agent"),
    DEVICE: ("enterprise.sells_own_registered_products", "application.by_agent"),
}


def prepare(code: str, facts: dict[str, Any], materials: list[str]) -> dict[str, Any]:
    """The peers' input for one case (built outside their timed loops): facts with the
    boolean defaults, the derived facts miaopi computes, and the materials list."""
    ctx = copy.deepcopy(facts)
    for path in DEFAULTS[code]:
        subject, name = path.split(".")
        ctx.setdefault(subject, {}).setdefault(name, False)
    if code == BUSINESS:
        ctx["business"].setdefault("family_members", [])
    as_of = dt.date.fromisoformat(ctx["application"]["date"])
    if code in (SENIOR, DISABILITY):
        rid = parse_resident_id(ctx["applicant"]["id_number"], as_of)
        ctx["applicant"]["age"] = age_on(rid.birth_date, as_of)
    elif code == BUSINESS:
        rid = parse_resident_id(ctx["operator"]["id_number"], as_of)
        ctx["operator"]["age"] = age_on(rid.birth_date, as_of)
    else:
        cc = parse_credit_code(ctx["enterprise"]["uscc"])
        ctx["enterprise"]["uscc_kind"] = cc.kind
        ctx["enterprise"]["uscc_checksum_ok"] = cc.checksum_ok
    ctx["materials"] = list(materials)
    return ctx


def aggregate(rows: list[tuple[str, str, Any]]) -> Result:
    """(rule, outcome, amount) of every matched row -> (outcome, amount, matched rule ids)."""
    outcomes = {o for _, o, _ in rows}
    if REJECT in outcomes:
        outcome = REJECT
    elif REVIEW in outcomes:
        outcome = REVIEW
    elif APPROVE in outcomes:
        outcome = APPROVE
    else:
        outcome = REVIEW  # no rule matched
    amount = None
    if outcome != REJECT:
        amount = next((a for _, o, a in rows if a is not None), None)
    return outcome, amount, frozenset(r for r, o, _ in rows if o != PENDING)


def zen_graph(columns: dict[str, str], rows: list[Row]) -> dict[str, Any]:
    inputs = [{"id": c, "name": c, "type": "expression", "field": f} for c, f in columns.items()]
    outputs = [
        {"id": f"out_{f}", "name": f, "type": "expression", "field": f}
        for f in ("rule", "outcome", "amount")
    ]
    rules = []
    for n, row in enumerate(rows):
        unknown = set(row.zen) - set(columns)
        assert not unknown, f"{row.rule}: no column {unknown}"
        cells = {"_id": f"row{n}", **{c: row.zen.get(c, "") for c in columns}}
        cells["out_rule"] = json.dumps(row.rule)
        cells["out_outcome"] = json.dumps(row.outcome)
        cells["out_amount"] = "" if row.amount is None else str(row.amount)
        rules.append(cells)
    return {
        "contentType": "application/vnd.gorules.decision",
        "nodes": [
            {"id": "request", "type": "inputNode", "name": "Request", "position": {"x": 0, "y": 0}},
            {
                "id": "policy",
                "type": "decisionTableNode",
                "name": "policy",
                "position": {"x": 300, "y": 0},
                "content": {
                    "hitPolicy": "collect",
                    "inputs": inputs,
                    "outputs": outputs,
                    "rules": rules,
                },
            },
            {
                "id": "response",
                "type": "outputNode",
                "name": "Response",
                "position": {"x": 600, "y": 0},
            },
        ],
        "edges": [
            {"id": "e1", "sourceId": "request", "targetId": "policy", "type": "edge"},
            {"id": "e2", "sourceId": "policy", "targetId": "response", "type": "edge"},
        ],
    }


class ZenPeer:
    name = "zen-engine"

    def __init__(self, rulesets: Path) -> None:
        import zen

        graphs = {code: zen_graph(cols, rows) for code, (cols, rows) in policies(rulesets).items()}
        self.engine = zen.ZenEngine({"loader": {"type": "static", "content": graphs}})

    def decide(self, code: str, ctx: dict[str, Any]) -> Result:
        matched = self.engine.evaluate(code, ctx)["result"]
        return aggregate([(r["rule"], r["outcome"], r.get("amount")) for r in matched])


class RuleEnginePeer:
    name = "rule-engine"

    def __init__(self, rulesets: Path) -> None:
        import rule_engine

        context = rule_engine.Context(default_value=None)
        self.rows = {
            code: [
                (rule_engine.Rule(row.expr, context=context), row.rule, row.outcome, row.amount)
                for row in rows
            ]
            for code, (_, rows) in policies(rulesets).items()
        }

    def decide(self, code: str, ctx: dict[str, Any]) -> Result:
        return aggregate(
            [
                (rule, outcome, amount)
                for r, rule, outcome, amount in self.rows[code]
                if r.matches(ctx)
            ]
        )
