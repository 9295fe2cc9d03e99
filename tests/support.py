"""Helpers shared by the tests: valid identity numbers and baseline cases per sample item."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

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
