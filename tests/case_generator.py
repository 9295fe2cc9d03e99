"""Varied, valid generated cases for the four sample items (deterministic for a given seed).

Every generated case is a well-formed case of its item: the benchmarks check that miaopi decides
each one (no INVALID_ARGUMENT) before timing anything. The generators vary what the policies
read: ages and birthdays (birthday edges, 29 February), regions, flags (present, defaulted),
enums, areas, certificate dates, business names and scopes, credit codes, by-agent filings and
the materials submitted (complete most of the time, sometimes one or more missing).

Shared by the benchmarks (tests/bench) and the tests that need many varied cases (test_convert).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from typing import Any

from tests.support import credit_code, resident_id

SENIOR = "GF00012000"
DISABILITY = "GF00034001"
BUSINESS = "XK00051000"
DEVICE = "BA00027000"
ITEMS = (SENIOR, DISABILITY, BUSINESS, DEVICE)

Case = tuple[dict[str, Any], list[str]]  # (facts, materials)

LOCAL = "440605"
OTHER_REGIONS = ("440604", "440606", "440607", "440103", "110101", "310115", "510107", "440608")
SURNAMES = "陈李黄张王梁刘何吴林周郑谢罗冯邓"
GIVEN = "建国丽华明秀英伟芳军敏静强磊洋艳勇杰娟涛超霞平刚桂"
SCOPE_GENERAL = (
    "日用百货销售",
    "服装服饰零售",
    "家用电器销售",
    "五金产品零售",
    "理发服务",
    "打字复印",
)
SCOPE_LICENSED = ("食品销售", "餐饮服务", "烟草制品零售", "药品零售")
SCOPE_PROHIBITED = ("网络赌博服务", "私人侦探服务")
SCOPE_ODD = ("卖东西", "各类服务", "网络直播带货")


def _date(rng: random.Random) -> dt.date:
    """An application date between 2024-01-01 and 2027-12-31."""
    return dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(4 * 365))


def _birth(rng: random.Random, as_of: dt.date, lo: int, hi: int) -> dt.date:
    """A birth date giving an age in [lo, hi]; one case in six sits on a birthday edge and
    one in forty on 29 February."""
    roll = rng.random()
    if roll < 0.025:
        year = as_of.year - rng.randint(lo, hi)
        year -= year % 4  # a leap year (the range 1900-2099 has no century exception)
        birth = dt.date(year, 2, 29)
        return birth if birth <= as_of else dt.date(year - 4, 2, 29)
    if roll < 0.19:  # exactly `age` today, or one day short of it
        age = rng.randint(lo, hi)
        try:
            birth = as_of.replace(year=as_of.year - age)
        except ValueError:  # as_of is 29 February
            birth = dt.date(as_of.year - age, 3, 1)
        return birth + dt.timedelta(days=rng.choice((0, 1)))
    return as_of - dt.timedelta(days=rng.randint(lo * 366, hi * 365 + 364))


def _id(rng: random.Random, birth: dt.date) -> str:
    region = LOCAL if rng.random() < 0.7 else rng.choice(OTHER_REGIONS)
    return resident_id(birth.isoformat(), region, f"{rng.randrange(990):03d}")  # 990-999: registry


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def _flag(rng: random.Random, p_true: float) -> bool | None:
    """True with probability p_true; otherwise False given explicitly or left to the default."""
    if rng.random() < p_true:
        return True
    return False if rng.random() < 0.5 else None


def _put(d: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        d[key] = value


def _materials(rng: random.Random, required: list[str], optional: list[str] = ()) -> list[str]:
    """All required materials 80% of the time, else one to three left out; optional ones
    (deferrable, or required only under a condition) given half of the time."""
    out = list(required)
    if rng.random() < 0.2 and out:
        for _ in range(rng.randint(1, min(3, len(out)))):
            out.remove(rng.choice(out))
    out += [m for m in optional if rng.random() < 0.5]
    rng.shuffle(out)
    return out


def senior(rng: random.Random) -> Case:
    as_of = _date(rng)
    birth = _birth(rng, as_of, 55, 112)
    applicant: dict[str, Any] = {
        "name": _name(rng),
        "id_number": _id(rng, birth),
        "hukou_region": LOCAL if rng.random() < 0.8 else rng.choice(OTHER_REGIONS),
    }
    _put(applicant, "deceased", _flag(rng, 0.04))
    _put(applicant, "receiving_allowance", _flag(rng, 0.08))
    application: dict[str, Any] = {"date": as_of.isoformat()}
    by_agent = _flag(rng, 0.25)
    _put(application, "by_agent", by_agent)
    required = ["id_card", "hukou_book", "bank_account"]
    agent = ["agent_id_card", "power_of_attorney"]
    materials = _materials(
        rng, required + agent if by_agent else required, [] if by_agent else agent
    )
    return {"applicant": applicant, "application": application}, materials


def disability(rng: random.Random) -> Case:
    as_of = _date(rng)
    birth = _birth(rng, as_of, 1, 95)
    status = rng.choices(("dibao", "dibao_edge", "tekun", "none"), (45, 30, 10, 15))[0]
    kind = rng.choices(("disability_card", "veteran_card"), (85, 15))[0]
    expiry = as_of + dt.timedelta(days=rng.choice((-400, -1, 0, 1, 30, 2000)) + rng.randrange(3))
    applicant: dict[str, Any] = {
        "name": _name(rng),
        "id_number": _id(rng, birth),
        "hukou_region": LOCAL if rng.random() < 0.8 else rng.choice(OTHER_REGIONS),
    }
    _put(applicant, "receiving_subsidy", _flag(rng, 0.06))
    application: dict[str, Any] = {"date": as_of.isoformat()}
    by_agent = _flag(rng, 0.3)
    _put(application, "by_agent", by_agent)
    facts = {
        "applicant": applicant,
        "household": {"status": status},
        "disability": {
            "certificate_type": kind,
            "certificate_number": f"{rng.randrange(10**16, 10**17)}{rng.randint(1, 4)}",
            "grade": rng.choice((1, 2, 3, 4, 2.0)),
            "certificate_expiry": expiry.isoformat(),
        },
        "application": application,
    }
    required = ["id_card", "hukou_book", "bank_account", kind]
    if status in ("dibao", "dibao_edge"):
        required.append("household_certificate")
    if by_agent:
        required += ["agent_id_card", "power_of_attorney"]
    return facts, _materials(rng, required)


def _business_name(rng: random.Random, person: str) -> str | None:
    body = person + rng.choice(("理发", "百货", "五金", "小吃", "服装", "家电"))
    return rng.choices(
        (
            None,  # no name (a name is optional)
            f"南海区{body}店",
            f"佛山市南海区{body}行",
            f"南海区{body}中心",
            f"南海区中国{body}店",  # forbidden word
            f"南海区{body}公司",  # company word (and bad form)
            f"南海区{body}A店",  # not all hanzi
            f"南海区{body}铺",  # bad organisational form
            f"{body}店",  # no region prefix
            f"广州市{body}部",  # wrong region prefix
        ),
        (20, 30, 8, 8, 5, 5, 5, 6, 7, 6),
    )[0]


def business(rng: random.Random) -> Case:
    as_of = _date(rng)
    birth = _birth(rng, as_of, 14, 70) if rng.random() < 0.75 else _birth(rng, as_of, 15, 19)
    person = _name(rng)
    operator: dict[str, Any] = {"name": person, "id_number": _id(rng, birth)}
    _put(operator, "is_civil_servant", _flag(rng, 0.05))
    _put(operator, "own_labor_income", _flag(rng, 0.5))
    composition = rng.choices(("individual", "family"), (70, 30))[0]
    biz: dict[str, Any] = {"composition": composition}
    _put(biz, "name", _business_name(rng, person))
    if composition == "family":
        members = rng.choice(([], [_name(rng)], [_name(rng), _name(rng)], None))
        _put(biz, "family_members", members)
    elif rng.random() < 0.1:
        biz["family_members"] = []
    scope = rng.sample(SCOPE_GENERAL, rng.randint(1, 3))
    roll = rng.random()
    if roll < 0.15:
        scope.append(rng.choice(SCOPE_LICENSED))
    elif roll < 0.2:
        scope.append(rng.choice(SCOPE_PROHIBITED))
    elif roll < 0.27:
        scope.append(rng.choice(SCOPE_ODD))
    rng.shuffle(scope)
    biz["scope"] = scope
    proof = rng.choice(("owned", "leased", "free_use"))
    application: dict[str, Any] = {"date": as_of.isoformat()}
    by_agent = _flag(rng, 0.2)
    _put(application, "by_agent", by_agent)
    facts = {
        "operator": operator,
        "business": biz,
        "premises": {
            "region": LOCAL if rng.random() < 0.85 else rng.choice(OTHER_REGIONS),
            "proof": proof,
        },
        "application": application,
    }
    required = ["id_card", "application_form"]
    required.append(
        {"owned": "property_certificate", "leased": "lease_contract"}.get(
            proof, "free_use_certificate"
        )
    )
    if by_agent:
        required += ["agent_id_card", "power_of_attorney"]
    optional = ["family_relationship_proof"] if composition == "family" else []
    return facts, _materials(rng, required, optional)


def _uscc(rng: random.Random) -> str:
    kind = rng.choices(("91", "92", "93", "11", "51", "52"), (70, 12, 5, 5, 4, 4))[0]
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    first17 = kind + "440605" + "".join(rng.choice(alphabet) for _ in range(9))
    code = credit_code(first17)
    if rng.random() < 0.08:  # a wrong check character: valid input, decided MANUAL_REVIEW
        code = code[:17] + rng.choice([c for c in alphabet if c != code[17]])
    return code


def device(rng: random.Random) -> Case:
    as_of = _date(rng)
    scope = ["第二类医疗器械销售"] if rng.random() < 0.88 else []
    scope += rng.sample(
        ("日用百货销售", "第一类医疗器械销售", "化妆品零售", "消毒用品销售"), rng.randint(0, 2)
    )
    if not scope:
        scope = ["日用百货销售"]
    rng.shuffle(scope)
    enterprise: dict[str, Any] = {
        "name": f"佛山市南海区{_name(rng)}医疗用品有限公司",
        "uscc": _uscc(rng),
        "business_scope": scope,
    }
    _put(enterprise, "sells_own_registered_products", _flag(rng, 0.05))
    region = rng.choices((LOCAL, "440604", "440606", "440103", "110101"), (60, 12, 12, 8, 8))[0]
    area = rng.choice(
        (rng.randint(15, 400), rng.choice((39, 39.5, 40, 40.0, 41)), round(rng.uniform(10, 300), 1))
    )
    outsourced = rng.random() < 0.35
    warehouse: dict[str, Any] = {"outsourced": outsourced}
    if (not outsourced or rng.random() < 0.3) and rng.random() < 0.93:
        warehouse["area_sqm"] = rng.choice((rng.randint(5, 200), 19, 19.9, 20, 21))
    categories = rng.sample(
        ("6826 物理治疗设备", "6864 医用卫生材料", "6866 医用高分子材料", "ivd_reagents"),
        rng.randint(1, 2),
    )
    application: dict[str, Any] = {"date": as_of.isoformat()}
    by_agent = _flag(rng, 0.2)
    _put(application, "by_agent", by_agent)
    facts = {
        "enterprise": enterprise,
        "premises": {"region": region, "area_sqm": area},
        "warehouse": warehouse,
        "quality_manager": {"qualified": rng.random() < 0.9},
        "products": {"categories": categories},
        "application": application,
    }
    required = [
        "filing_form",
        "business_license",
        "id_cards",
        "qualification_certificate",
        "premises_proof",
        "quality_manual_toc",
    ]
    if outsourced:
        required.append("warehouse_service_contract")
    if by_agent:
        required.append("power_of_attorney")
    return facts, _materials(rng, required)


GENERATORS: dict[str, Callable[[random.Random], Case]] = {
    SENIOR: senior,
    DISABILITY: disability,
    BUSINESS: business,
    DEVICE: device,
}


def generate(item_code: str, n: int, seed: int = 1) -> list[Case]:
    rng = random.Random(f"{item_code}:{seed}")
    gen = GENERATORS[item_code]
    return [gen(rng) for _ in range(n)]


def mixed(n: int, seed: int = 1) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
    """n cases over the four items in turn: (item code, facts, materials)."""
    rngs = {code: random.Random(f"{code}:mixed:{seed}") for code in ITEMS}
    for i in range(n):
        code = ITEMS[i % len(ITEMS)]
        facts, materials = GENERATORS[code](rngs[code])
        yield code, facts, materials


def with_rule_sets(
    catalog: Any, code: str, n: int, seed: int, today: dt.date, empty: bool = False
) -> Iterator[tuple[int, Any, Any, set[str]]]:
    """(case number, compiled item, validated case, rules) for `n` generated cases of
    `code`: each case with the rules the engine fired for it, then a random subset of the
    item's rules (any outcome, any reasons), then (`empty`) none."""
    from miaopi_server.decision.validate import asked_as_of
    from miaopi_server.rules.compile import engine_fact

    rng = random.Random(code)
    for number, (facts, materials) in enumerate(generate(code, n, seed=seed)):
        asked = asked_as_of(facts, today)
        loaded = catalog.select_as_of(code, asked)
        case = loaded.validator(facts, materials, asked)
        compiled = loaded.compiled
        fact = engine_fact(compiled, case.values, case.materials)
        fired = set(catalog.engine.evaluate(loaded.handle, fact))
        rules = sorted({name.partition("#")[0] for name in compiled.conditions})
        chosen = [fired, set(rng.sample(rules, rng.randrange(len(rules) + 1)))]
        for rule_set in [*chosen, set()] if empty else chosen:
            yield number, compiled, case, rule_set
