"""Helpers shared by the tests: valid identity numbers, baseline cases per sample item, gRPC
requests, rule-file edits, principals and tokens, hostile values, checks on compiled conditions.

Test modules import from here (or from conftest), never from each other."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import textwrap
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.audit.canonical import canonical
from miaopi_server.audit.record import PendingRecord, case_canonical, case_digest, fixed_time
from miaopi_server.edge.auth import hash_token
from miaopi_server.rules.identity import credit_code_check_char, resident_id_check_char

ROOT = Path(__file__).resolve().parents[1]
RULESETS = ROOT / "rulesets"
# The 13 worked examples of the item specifications (shared/cases/examples.jsonl), copied here
# so that the suite needs nothing outside the repository.
EXAMPLES = ROOT / "tests" / "data" / "examples.jsonl"


def resident_id(birth: str, region: str = "440605", seq: str = "123") -> str:
    """A checksum-valid resident ID number born on `birth` (YYYY-MM-DD)."""
    first17 = region + birth.replace("-", "") + seq
    return first17 + resident_id_check_char(first17)


def credit_code(first17: str) -> str:
    return first17 + credit_code_check_char(first17)


def born_years_before(as_of: str, years: int) -> str:
    """Birth date exactly `years` years before `as_of` (the birthday falls on as_of)."""
    d = dt.date.fromisoformat(as_of)
    return d.replace(year=d.year - years).isoformat()


def with_facts(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Copy of a facts dict with dotted-path changes; a value of None removes the fact."""
    out = copy.deepcopy(base)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return out


# The first lines of every small test rule file: item T0001 with one legal basis, `art1`.
RULE_FILE_HEAD = """\
schema: miaopi/rulefile/v1
item:
  code: T0001
  name: 测试事项
  type: 行政给付
  department: 测试局
  time_limit: {statutory_working_days: 5, promised_working_days: 2}
version: "1"
legal_basis:
  art1: {law: 测试办法, article: 第一条}
"""


# Who hears a challenge to a refusal; appended where lint must find nothing (MP360).
REMEDIES = "remedies: {review_body: 测试区人民政府, court: 测试区人民法院}\n"


def rule_file(rest: str) -> str:
    """A test rule file: RULE_FILE_HEAD, then `rest` (form, materials, rules), dedented."""
    return RULE_FILE_HEAD + textwrap.dedent(rest)


AS_OF = "2026-11-20"

SENIOR = {
    "applicant": {
        "name": "陈建国",
        "id_number": resident_id("1950-03-01"),
        "hukou_region": "440605",
    },
    "application": {"date": AS_OF},
}
SENIOR_MATERIALS = ["id_card", "hukou_book", "bank_account"]

DISABILITY = {
    "applicant": {"name": "李四", "id_number": resident_id("1970-05-05"), "hukou_region": "440605"},
    "household": {"status": "dibao"},
    "disability": {
        "certificate_type": "disability_card",
        "certificate_number": "44060519700505123",
        "grade": 2,
        "certificate_expiry": "2030-01-01",
    },
    "application": {"date": AS_OF},
}
DISABILITY_MATERIALS = [
    "id_card",
    "hukou_book",
    "bank_account",
    "disability_card",
    "household_certificate",
]

BUSINESS = {
    "operator": {"name": "黄丽", "id_number": resident_id("1990-01-01")},
    "business": {"name": "南海区黄丽理发店", "composition": "individual", "scope": ["理发服务"]},
    "premises": {"region": "440605", "proof": "leased"},
    "application": {"date": AS_OF},
}
BUSINESS_MATERIALS = ["id_card", "application_form", "lease_contract"]

DEVICE = {
    "enterprise": {
        "name": "佛山市南海区安心医疗用品有限公司",
        "uscc": "91350100M000100Y43",
        "business_scope": ["第二类医疗器械销售"],
    },
    "premises": {"region": "440605", "area_sqm": 120},
    "warehouse": {"outsourced": False, "area_sqm": 50},
    "quality_manager": {"qualified": True},
    "products": {"categories": ["6826 物理治疗设备"]},
    "application": {"date": AS_OF},
}
DEVICE_MATERIALS = [
    "filing_form",
    "business_license",
    "id_cards",
    "qualification_certificate",
    "premises_proof",
    "quality_manual_toc",
]


# -- requests


def decide_request(
    code: str, facts: dict[str, Any], materials: list[str], **kw: Any
) -> pb.DecideRequest:
    """A DecideRequest for one case (extra fields as keywords, e.g. window=...)."""
    req = pb.DecideRequest(item_code=code, materials=materials, **kw)
    json_format.ParseDict(facts, req.facts)
    return req


def numbered_senior(i: int) -> tuple[int, dict[str, Any]]:
    """Senior-allowance case i of a series: distinct ID numbers, ages 60 to 109."""
    age = 60 + i % 50
    facts = with_facts(
        SENIOR,
        applicant__id_number=resident_id(
            born_years_before(AS_OF, age), seq=f"{i % 990:03d}"
        ),  # 990-999 are the registry's
    )
    return age, facts


def senior_outcome(age: int) -> int:
    """What the shipped senior allowance decides at `age` with every material submitted."""
    if age < 70:
        return pb.OUTCOME_REJECT
    return pb.OUTCOME_MANUAL_REVIEW if age >= 105 else pb.OUTCOME_APPROVE


# -- editing the senior rule file, and a case whose amount shows the edit

# A server's first start on a state directory publishes its rule set: one `ruleset_published`
# event in the chain before any decision (ops/publish.py); a restart with the same set adds none.
PUBLISHED_AT_START = 1

SENIOR_FILE = "GF00012000-senior-allowance.yaml"
CENTENARIAN = with_facts(SENIOR, applicant__id_number=resident_id("1920-01-01"))


def centenarian_request() -> pb.DecideRequest:
    """The senior allowance for a 100-year-old: the amount set_amount changes."""
    req = pb.DecideRequest(item_code="GF00012000", materials=SENIOR_MATERIALS)
    json_format.ParseDict(CENTENARIAN, req.facts)
    return req


def set_amount(root: Path, amount: int) -> None:
    """Edit the senior rule file under `root`: the monthly amount from age 100, and, as an
    author would (publication runs the set's own cases), the cases beside it that expect the
    old amount."""
    path = root / SENIOR_FILE
    text = path.read_text(encoding="utf-8")
    start = text.index("{when: applicant.age >= 100, value: ")
    end = text.index("}", start)
    old = text[start:end].rsplit(" ", 1)[1]
    path.write_text(
        text[:start] + f"{{when: applicant.age >= 100, value: {amount}" + text[end:],
        encoding="utf-8",
    )
    cases = path.with_name(path.name.replace(".yaml", ".cases.jsonl"))
    if cases.exists():
        lines = cases.read_text(encoding="utf-8")
        cases.write_text(
            lines.replace(f'"monthly_amount": {old}}}', f'"monthly_amount": {amount}}}'),
            encoding="utf-8",
        )


# -- principals (for a credentials file)

TOKENS = {
    "w1": "token-window-one",
    "w2": "token-window-two",
    "sup": "token-supervisor",
    "adm": "token-admin",
    "slow": "token-rate-limited",
}


def credentials(path: Path) -> Path:
    """Write a credentials file for TOKENS (plus a certificate-only window) to `path`."""
    principals = [
        {
            "id": "w1",
            "role": "window",
            "window_id": "W-GC-01",
            "jurisdiction": "440605",
            "items": ["GF00012000"],
            "token_sha256": hash_token(TOKENS["w1"]),
        },
        {
            "id": "w2",
            "role": "window",
            "window_id": "W-DL-02",
            "items": ["GF00012000"],
            "token_sha256": hash_token(TOKENS["w2"]),
        },
        {"id": "sup", "role": "supervisor", "token_sha256": hash_token(TOKENS["sup"])},
        {"id": "adm", "role": "admin", "token_sha256": hash_token(TOKENS["adm"])},
        {
            "id": "slow",
            "role": "window",
            "window_id": "W-SLOW",
            "items": ["*"],
            "token_sha256": hash_token(TOKENS["slow"]),
        },
        {
            "id": "cert-window",
            "role": "window",
            "window_id": "W-CERT",
            "items": ["*"],
            "cert_common_name": "window-cert-01",
        },
    ]
    path.write_text(yaml.safe_dump({"principals": principals}), encoding="utf-8")
    return path


# -- hostile values

NASTY: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2.5,
    1e308,
    float("nan"),
    float("inf"),
    "",
    " ",
    "\x00",
    "\ud800",
    'a"b\\c',
    "中华" * 400,
    "x" * 5000,
    [],
    [None],
    [[["deep"]]],
    {},
    {"a": {"b": {}}},
    "2024-02-30",
    "9999-12-31",
    "440605",
    "11010519491231002X",
    "第二类医疗器械销售",
    ["网络赌博服务", "\u202e"],
    70,
    39.99999,
    "OUTCOME_APPROVE",
    "$or",
    {"$gte": 1},
]


def mutate(rng: random.Random, facts: dict[str, Any]) -> dict[str, Any]:
    """A copy of `facts` with one to three facts or subjects, existing or new (`$and`, `_p`),
    set to NASTY values."""
    out = copy.deepcopy(facts)
    for _ in range(rng.randrange(1, 4)):
        subject = rng.choice([*out, "zzz", "_p", "_m", "_always"])
        if rng.random() < 0.15:
            out[subject] = rng.choice(NASTY)
            continue
        node = out.setdefault(subject, {})
        if not isinstance(node, dict):
            continue
        key = rng.choice([*node, "extra", "age", "sid", "$and"]) if node else "extra"
        node[key] = rng.choice(NASTY)
    return out


# -- compiled conditions


def unsafe_quantifiers(cond: Any) -> list[Any]:
    """Every `$iany` / `$iall` whose element condition is an `$or`, anywhere in `cond`."""
    found: list[Any] = []
    if isinstance(cond, dict):
        for key, value in cond.items():
            if key in ("$iany", "$iall"):
                found.extend(inner for inner in value.values() if "$or" in inner)
            found.extend(unsafe_quantifiers(value))
    elif isinstance(cond, list):
        for item in cond:
            found.extend(unsafe_quantifiers(item))
    return found


def pending(
    i: int,
    request_id: str = "",
    window: dict[str, str] | None = None,
    node_id: str = "n1",
    decision: dict[str, Any] | None = None,
) -> PendingRecord:
    case = {"item_code": "T1", "facts": {"n": i}, "materials": []}
    when = f"2026-11-23T00:{i // 60 % 60:02d}:{i % 60:02d}Z"
    decision = decision or {
        "decision_id": f"d{i}",
        "item_code": "T1",
        "outcome": "OUTCOME_APPROVE",
        "decided_at": when,
        **({"request_id": request_id} if request_id else {}),
    }
    return PendingRecord(
        decision_id=f"d{i}",
        request_id=request_id,
        item_code="T1",
        outcome="APPROVE",
        window_id="w1",
        decided_at=fixed_time(dt.datetime.fromisoformat(when)),
        case=case,
        case_json=case_canonical("T1", case["facts"], []),
        case_digest=case_digest("T1", case["facts"], []),
        window=window or {"window_id": "w1", "operator_id": "op"},
        node_id=node_id,
        decision_json=canonical(decision),
    )


# -- shared government data (四免) -------------------------------------------------------------
REGISTRY = ROOT / "data" / "registry"
SOURCED_AS_OF = "2026-11-20"
_SENIOR_BINDING = """
sources:
  population:
    key: applicant.id_number
    facts:
      applicant.hukou_region: hukou_region
      applicant.deceased: deceased
    on_conflict: {conflict}
    on_missing_record: {missing}
    on_unavailable: {unavailable}
    deadline_ms: 200
e_license_holder: applicant.id_number
"""


def sourced_senior_rule(
    conflict: str = "manual_review", missing: str = "use_window", unavailable: str = "manual_review"
) -> str:
    """The senior allowance rule file with hukou and death from the population registry only
    (its shipped `sources:` replaced) and the hukou book as an e-license, under the given
    settings."""
    text = (RULESETS / "GF00012000-senior-allowance.yaml").read_text(encoding="utf-8")
    start = text.index("\nsources:\n")
    end = text.index("e_license_holder: applicant.id_number\n", start)
    text = text[:start] + text[end + len("e_license_holder: applicant.id_number\n") :]
    binding = _SENIOR_BINDING.format(conflict=conflict, missing=missing, unavailable=unavailable)
    return text + binding


def registry_people(**where: Any) -> list[dict[str, Any]]:
    """People of the sample population matching `where` (read at run time: no reserved ID
    number is written in a test)."""
    lines = (REGISTRY / "v1" / "population.jsonl").read_text(encoding="utf-8").splitlines()
    return [p for p in map(json.loads, lines) if all(p[k] == v for k, v in where.items())]


def registry_senior(deceased: bool = False, region: str = "440605") -> dict[str, Any]:
    """A person of the registry aged 75-99 on SOURCED_AS_OF in `region`."""
    asof = dt.date.fromisoformat(SOURCED_AS_OF)

    def age(key: str) -> int:
        born = dt.date(int(key[6:10]), int(key[10:12]), int(key[12:14]))
        return asof.year - born.year - ((asof.month, asof.day) < (born.month, born.day))

    return next(
        p
        for p in registry_people(hukou_region=region, deceased=deceased)
        if 75 <= age(p["key"]) < 100
    )
