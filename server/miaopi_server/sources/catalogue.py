"""The source catalogue: every data source a rule file may name, the kind of key it is looked up
by and the fields it returns, each with its type (a field type name of rules/fieldtypes.py).

One declaration here; the rule loader and lint check bindings against it, the embedded registry
builds its tables from it and the HTTP connector checks replies against it.
"""

from __future__ import annotations

from dataclasses import dataclass

# The e-license library is not bound to facts: materials with `e_license: true` consult it.
E_LICENSE_LIBRARY = "elicense"


@dataclass(frozen=True)
class SourceField:
    name: str
    kind: str  # boolean | integer | string | date | region_code
    label: str


@dataclass(frozen=True)
class SourceSpec:
    name: str
    label: str
    key_kind: str  # resident_id | credit_code: the field type of the key fact
    fields: dict[str, SourceField]


def _spec(name: str, label: str, key_kind: str, *fields: SourceField) -> SourceSpec:
    return SourceSpec(name, label, key_kind, {f.name: f for f in fields})


CATALOGUE: dict[str, SourceSpec] = {
    s.name: s
    for s in (
        _spec(
            "population",
            "人口信息库（公安户籍）",
            "resident_id",
            SourceField("name", "string", "姓名"),
            SourceField("hukou_region", "region_code", "户籍所在地区划代码"),
            SourceField("deceased", "boolean", "已死亡注销"),
        ),
        _spec(
            "disability",
            "残疾人证信息库（残联）",
            "resident_id",
            SourceField("certificate_type", "string", "证件类型"),
            SourceField("certificate_number", "string", "证件编号"),
            SourceField("grade", "integer", "残疾等级"),
            SourceField("certificate_expiry", "date", "证件有效期至"),
        ),
        _spec(
            "benefits",
            "民政待遇发放台账",
            "resident_id",
            SourceField("receiving_senior_allowance", "boolean", "在领高龄津贴"),
            SourceField("receiving_disability_subsidy", "boolean", "在领困难残疾人生活补贴"),
        ),
    )
}
# Kinds of licence the e-license library issues (a material's `e_license_type`).
LICENCE_TYPES: dict[str, str] = {
    "resident_id_card": "居民身份证",
    "hukou_book": "居民户口簿",
    "disability_card": "残疾人证",
    "veteran_card": "残疾军人证",
    "household_certificate": "低保证",
    "property_certificate": "不动产权证书",
    "business_license": "营业执照",
}
