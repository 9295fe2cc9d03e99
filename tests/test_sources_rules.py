"""Rule files that take facts and e-licenses from shared data: the loader's checks, and cases
decided on lookups from the real embedded registry (people picked from its fixtures at run
time, so no reserved ID number is written here)."""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from miaopi_server.decision.catalog import Catalog, load_catalog
from miaopi_server.decision.sourced import Gathered
from miaopi_server.errors import CaseInvalid, RuleFileError
from miaopi_server.ops.lookups import gather
from miaopi_server.sources.embedded import EmbeddedRegistry
from miaopi_server.sources.http import HttpPlatform
from miaopi_server.sources.model import SourceUnavailable
from tests.support import ROOT, RULESETS

DATA = ROOT / "data" / "registry"
SENIOR = (RULESETS / "GF00012000-senior-allowance.yaml").read_text(encoding="utf-8")
AS_OF = "2026-11-20"
BINDING = """
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


def senior_file(conflict="manual_review", missing="use_window", unavailable="manual_review"):
    text = SENIOR.replace(
        "applicant.hukou_region: {type: region_code, label: 户籍所在地区划代码, required: true}",
        "applicant.hukou_region: {type: region_code, label: 户籍所在地区划代码}",
    )
    text = text.replace(
        "{id: hukou_book, name: 户口簿, need: required, e_license: true}",
        "{id: hukou_book, name: 户口簿, need: required, e_license: true,"
        " e_license_type: hukou_book}",
    )
    return text + BINDING.format(conflict=conflict, missing=missing, unavailable=unavailable)


def load(tmp_path: Path, text: str) -> Catalog:
    (tmp_path / "item.yaml").write_text(text, encoding="utf-8")
    return load_catalog(tmp_path)


def people(**where: Any) -> list[dict[str, Any]]:
    lines = (DATA / "v1" / "population.jsonl").read_text(encoding="utf-8").splitlines()
    return [p for p in map(json.loads, lines) if all(p[k] == v for k, v in where.items())]


def age(key: str) -> int:
    born = dt.date(int(key[6:10]), int(key[10:12]), int(key[12:14]))
    asof = dt.date.fromisoformat(AS_OF)
    return asof.year - born.year - ((asof.month, asof.day) < (born.month, born.day))


def senior_local(deceased: bool = False) -> dict[str, Any]:
    return next(
        p for p in people(hukou_region="440605", deceased=deceased) if 75 <= age(p["key"]) < 100
    )


@pytest.fixture(scope="module")
def registry():
    reg = EmbeddedRegistry(DATA)
    yield reg
    reg.close()


def case(key: str, **applicant: Any) -> dict[str, Any]:
    return {
        "applicant": {"name": "张三", "id_number": key, **applicant},
        "application": {"date": AS_OF},
    }


def run(cat: Catalog, provider: Any, facts: dict[str, Any], materials: list[str], consent="授权-1"):
    item = cat.select("GF00012000", facts, dt.date(2026, 11, 23)).item
    gathered = gather(item, facts, consent, provider)
    return cat.decide("GF00012000", facts, materials, dt.date(2026, 11, 23), gathered=gathered)


def licences(registry: EmbeddedRegistry, key: str, kind: str) -> list[Any]:
    return [x for x in registry.licences(key, 1) if x.licence_type == kind]


class TestLoader:
    @pytest.mark.parametrize(
        ("change", "code", "text"),
        [
            (("population:\n", "tax:\n"), "MP350", "没有数据源 'tax'"),
            (("applicant.deceased: deceased", "applicant.deceased: dead"), "MP350", "'dead'"),
            (("key: applicant.id_number", "key: applicant.name"), "MP351", "resident_id"),
            (("applicant.deceased: deceased", "applicant.deceased: hukou_region"), "MP351", ""),
            (("on_conflict: manual_review", "on_conflict: maybe"), "MP105", "on_conflict"),
            (("e_license_type: hukou_book", "e_license_type: passport"), "MP353", "passport"),
        ],
    )
    def test_a_bad_binding_is_refused(self, tmp_path, change, code, text):
        with pytest.raises(RuleFileError) as exc:
            load(tmp_path, senior_file().replace(*change))
        assert any(d.code == code and text in d.message for d in exc.value.diagnostics), exc.value

    def test_a_source_backed_fact_may_not_be_required_from_the_window(self, tmp_path):
        bad = senior_file().replace(
            "applicant.hukou_region: {type: region_code, label: 户籍所在地区划代码}",
            "applicant.hukou_region:"
            " {type: region_code, label: 户籍所在地区划代码, required: true}",
        )
        with pytest.raises(RuleFileError) as exc:
            load(tmp_path, bad)
        assert [d.code for d in exc.value.diagnostics] == ["MP352"]

    def test_the_binding_is_in_the_item(self, tmp_path):
        cat = load(tmp_path, senior_file())
        item = cat.versions["GF00012000"][0].item
        assert set(item.source_backed) == {"applicant.hukou_region", "applicant.deceased"}
        cat.close()


class TestDecisions:
    @pytest.fixture()
    def cat(self, tmp_path):
        c = load(tmp_path, senior_file())
        yield c
        c.close()

    def test_without_consent_the_case_is_decided_on_its_own_facts(self, cat, registry):
        p = senior_local()
        d = run(
            cat,
            registry,
            case(p["key"], hukou_region="440605"),
            ["id_card", "hukou_book", "bank_account"],
            consent="",
        )
        assert d.outcome == "APPROVE" and d.sourced is None and d.provenance == ()

    def test_a_fact_the_window_omits_comes_from_the_source_with_its_provenance(self, cat, registry):
        p = senior_local()
        d = run(cat, registry, case(p["key"]), ["id_card", "bank_account"])
        assert d.outcome == "APPROVE", d.reasons
        origin = {o.path: o for o in d.provenance}
        hukou = origin["applicant.hukou_region"]
        assert (hukou.origin, hukou.source, hukou.record_id) == (
            "source",
            "population",
            p["record_id"],
        )
        assert hukou.fetched_at.endswith("Z")
        assert origin["applicant.name"].origin == "window"
        assert origin["applicant.age"].origin == "derived"
        # hukou_book came from the e-license library, named by its number
        assert [(u.material_id, u.number) for u in d.e_licenses] == [
            (
                "hukou_book",
                next(
                    x.number
                    for x in registry.licences(p["key"], 1)
                    if x.licence_type == "hukou_book"
                ),
            )
        ]

    def test_a_conflict_goes_to_review_naming_both_values(self, cat, registry):
        p = senior_local()
        d = run(
            cat,
            registry,
            case(p["key"], hukou_region="440604"),
            ["id_card", "hukou_book", "bank_account"],
        )
        assert d.outcome == "MANUAL_REVIEW"  # over the REJECT the window's value would give
        conflict = d.reasons[0]
        assert conflict.rule_id == "data:conflict:applicant.hukou_region"
        assert (
            "数据不一致" in conflict.message
            and "440604" in conflict.message
            and "440605" in conflict.message
        )
        assert d.review_due is not None

    def test_source_wins_takes_the_registry_value_and_says_so(self, tmp_path, registry):
        cat = load(tmp_path, senior_file(conflict="source_wins"))
        p = senior_local(deceased=True) if people(deceased=True, hukou_region="440605") else None
        assert p is not None
        d = run(
            cat, registry, case(p["key"], deceased=False), ["id_card", "hukou_book", "bank_account"]
        )
        assert "deceased" in {r.rule_id for r in d.reasons} and d.outcome == "REJECT"
        note = {o.path: o for o in d.provenance}["applicant.deceased"].note
        assert "以共享数据为准" in note
        cat.close()

    def test_no_record_uses_the_window_value_and_says_so(self, cat, registry):
        facts = case("440605194001011233", hukou_region="440605")
        d = run(cat, registry, facts, ["id_card", "hukou_book", "bank_account"])
        assert d.outcome == "APPROVE"
        assert {o.path: o for o in d.provenance}["applicant.hukou_region"].note.startswith(
            "人口信息库"
        )

    @pytest.mark.parametrize(
        ("missing", "outcome"), [("manual_review", "MANUAL_REVIEW"), ("invalid_argument", None)]
    )
    def test_no_record_under_the_other_settings(self, tmp_path, registry, missing, outcome):
        cat = load(tmp_path, senior_file(missing=missing))
        facts = case("440605194001011233", hukou_region="440605")
        if outcome is None:
            with pytest.raises(CaseInvalid) as exc:
                run(cat, registry, facts, ["id_card", "hukou_book", "bank_account"])
            assert exc.value.violations[0].field == "facts.applicant.id_number"
        else:
            assert (
                run(cat, registry, facts, ["id_card", "hukou_book", "bank_account"]).outcome
                == outcome
            )
        cat.close()

    def test_omitted_fact_with_no_record_is_invalid_argument_naming_it(self, cat, registry):
        with pytest.raises(CaseInvalid) as exc:
            run(
                cat, registry, case("440605194001011233"), ["id_card", "hukou_book", "bank_account"]
            )
        assert [v.field for v in exc.value.violations] == ["facts.applicant.hukou_region"]

    def test_a_revoked_licence_does_not_count(self, cat, registry):
        """A local senior whose only hukou-book e-license is revoked (real registry data)."""
        day = dt.date.fromisoformat(AS_OF)
        p = next(
            x
            for x in people(hukou_region="440605", deceased=False)
            if 75 <= age(x["key"]) < 100
            and (
                books := [
                    b for b in registry.licences(x["key"], 1) if b.licence_type == "hukou_book"
                ]
            )
            and all(b.revoked for b in books)
            and not any(b.valid_on(day) for b in books)
        )
        d = run(cat, registry, case(p["key"]), ["id_card", "bank_account"])
        assert d.outcome == "REJECT" and [m.id for m in d.missing_materials] == ["hukou_book"]
        assert d.e_licenses == ()
        assert d.sourced is not None and d.sourced.licences  # the library did answer

    def test_an_expired_licence_does_not_count(self, tmp_path, registry):
        """Someone whose resident ID card e-licenses all expired before the as-of date, with
        the ID card as an e-license material."""
        text = senior_file().replace(
            "{id: id_card, name: 居民身份证, need: required, e_license: true}",
            "{id: id_card, name: 居民身份证, need: required, e_license: true,"
            " e_license_type: resident_id_card}",
        )
        cat = load(tmp_path, text)
        day = dt.date.fromisoformat(AS_OF)
        p = next(
            x
            for x in people()
            if (
                cards := [
                    c
                    for c in registry.licences(x["key"], 1)
                    if c.licence_type == "resident_id_card"
                ]
            )
            and all(c.valid_until is not None and c.valid_until < day for c in cards)
        )
        d = run(cat, registry, case(p["key"]), ["bank_account"])
        assert "id_card" in [m.id for m in d.missing_materials]
        assert "id_card" not in [u.material_id for u in d.e_licenses]
        cat.close()

    @pytest.mark.parametrize(
        ("setting", "outcome"), [("manual_review", "MANUAL_REVIEW"), ("unavailable", None)]
    )
    def test_an_unreachable_source(self, tmp_path, setting, outcome):
        """A data-sharing platform nobody answers for (a real connection, refused)."""
        cat = load(tmp_path, senior_file(unavailable=setting))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        down = HttpPlatform(f"http://127.0.0.1:{port}", "token")
        facts = case("440605194001011233", hukou_region="440605")
        if outcome is None:
            with pytest.raises(SourceUnavailable):
                run(cat, down, facts, ["id_card", "hukou_book", "bank_account"])
        else:
            d = run(cat, down, facts, ["id_card", "hukou_book", "bank_account"])
            assert d.outcome == outcome and d.reasons[0].rule_id == "data:unavailable:population"
            assert "无法连接" in d.sourced.lookups[0].reason
        cat.close()

    def test_recorded_lookups_round_trip_and_replay_to_the_same_decision(self, cat, registry):
        p = senior_local()
        facts = case(p["key"], hukou_region="440604")
        first = run(cat, registry, facts, ["id_card", "bank_account"])
        assert first.sourced is not None
        again = Gathered.from_json(json.loads(json.dumps(first.sourced.to_json())))
        replayed = cat.decide(
            "GF00012000", facts, ["id_card", "bank_account"], dt.date(2030, 1, 1), gathered=again
        )
        assert replayed == first
