"""The embedded registry on the shipped data directory, the fixtures' checks, the generator's
determinism and the reserved 990-999 ID range."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from miaopi_server.rules.identity import parse_resident_id
from miaopi_server.sources.catalogue import CATALOGUE, LICENCE_TYPES
from miaopi_server.sources.embedded import EmbeddedRegistry, RegistryInvalid
from miaopi_server.sources.model import Licence, SourceUnavailable
from tests.support import ROOT

DATA = ROOT / "data" / "registry"
FIXED = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)


def rows(table: str) -> list[dict[str, Any]]:
    text = (DATA / "v1" / f"{table}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def registry():
    reg = EmbeddedRegistry(DATA, clock=lambda: FIXED)
    yield reg
    reg.close()


class TestShippedData:
    def test_a_few_hundred_people_all_in_the_reserved_range(self):
        people = rows("population")
        assert len(people) >= 300
        assert len({p["key"] for p in people}) == len(people)
        for p in people:
            parsed = parse_resident_id(p["key"], dt.date(2026, 1, 1))  # raises if invalid
            assert 990 <= int(p["key"][14:17]) <= 999, p["record_id"]
            assert parsed.birth_date.year >= 1915

    def test_every_table_has_records_for_people_of_the_population(self):
        keys = {p["key"] for p in rows("population")}
        for table in ("disability", "benefits"):
            assert rows(table) and {r["key"] for r in rows(table)} <= keys
        licences = rows("elicense")
        assert {r["holder_id"] for r in licences} <= keys
        # the cases the shipped items need: expired, revoked and open-ended licences
        assert any(r["revoked"] for r in licences)
        assert any(r["valid_until"] is None for r in licences)
        assert any(r["valid_until"] and r["valid_until"] < "2026-01-01" for r in licences)
        assert {r["licence_type"] for r in licences} <= set(LICENCE_TYPES)

    def test_the_generator_writes_the_committed_files(self, tmp_path: Path):
        spec = importlib.util.spec_from_file_location("generate", DATA / "generate.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main(tmp_path)
        for path in sorted((DATA / "v1").glob("*.jsonl")):
            assert (tmp_path / "v1" / path.name).read_bytes() == path.read_bytes(), path.name

    def test_nothing_else_in_the_repository_uses_the_reserved_range(self):
        """Sequence digits 990-999 belong to the registry: no example, regression case, test or
        document may carry such an ID number, so none collides with a record by accident."""
        pattern = re.compile(r"(?<![0-9])\d{6}(?:18|19|20)\d{2}[01]\d[0-3]\d99\d[0-9Xx](?![0-9])")
        skip = {".git", ".venv", "build", "var", "__pycache__", ".mypy_cache", ".ruff_cache"}
        found = []
        for path in ROOT.rglob("*"):
            rel = path.relative_to(ROOT)
            if not path.is_file() or skip & set(rel.parts) or rel.parts[:2] == ("data", "registry"):
                continue
            if path.suffix not in {".py", ".jsonl", ".json", ".yaml", ".md", ".txt", ".proto"}:
                continue
            found += [f"{rel}: {m}" for m in pattern.findall(path.read_text("utf-8", "replace"))]
        assert found == []


class TestLookups:
    def test_a_record_with_its_id_typed_values_and_fetch_time(self, registry):
        person = rows("population")[0]
        rec = registry.fetch("population", person["key"], 1.0)
        assert rec is not None
        assert rec.record_id == person["record_id"] and rec.source == "population"
        assert rec.values == {k: person[k] for k in CATALOGUE["population"].fields}
        assert isinstance(rec.values["deceased"], bool)
        assert rec.fetched_at == "2026-11-23T08:00:00.000000Z"

    def test_integers_stay_integers(self, registry):
        d = rows("disability")[0]
        rec = registry.fetch("disability", d["key"], 1.0)
        assert rec is not None and rec.values["grade"] == d["grade"]
        assert type(rec.values["grade"]) is int

    def test_no_record_is_none(self, registry):
        assert registry.fetch("population", "440605194001011233", 1.0) is None

    def test_an_unknown_source_is_unavailable_not_empty(self, registry):
        with pytest.raises(SourceUnavailable, match="nosuch"):
            registry.fetch("nosuch", "440605194001011233", 1.0)

    def test_licences_of_a_holder(self, registry):
        holder = rows("elicense")[0]["holder_id"]
        expected = sorted(r["number"] for r in rows("elicense") if r["holder_id"] == holder)
        got = registry.licences(holder, 1.0)
        assert [lic.number for lic in got] == expected
        assert registry.licences("440605194001011233", 1.0) == ()


class TestLicenceValidity:
    LIC = Licence("hukou_book", "h", "n", dt.date(2020, 1, 1), dt.date(2026, 6, 30))

    @pytest.mark.parametrize(
        ("day", "valid"),
        [("2019-12-31", False), ("2020-01-01", True), ("2026-06-30", True), ("2026-07-01", False)],
    )
    def test_from_and_until_are_inclusive(self, day: str, valid: bool):
        assert self.LIC.valid_on(dt.date.fromisoformat(day)) is valid

    def test_revoked_is_never_valid_and_no_expiry_always_is(self):
        revoked = Licence("hukou_book", "h", "n", dt.date(2020, 1, 1), None, revoked=True)
        assert not revoked.valid_on(dt.date(2024, 1, 1))
        open_ended = Licence("hukou_book", "h", "n", dt.date(2020, 1, 1), None)
        assert open_ended.valid_on(dt.date(2099, 1, 1))


class TestBadFixtures:
    def copy(self, tmp_path: Path) -> Path:
        shutil.copytree(DATA, tmp_path / "reg", ignore=shutil.ignore_patterns("*.py", "*.md"))
        return tmp_path / "reg"

    def append(self, path: Path, row: dict[str, Any]) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    @pytest.mark.parametrize(
        ("table", "row", "message"),
        [
            ("population", {"record_id": "X", "key": "k", "age": 3}, "没有字段 'age'"),
            ("population", {"record_id": "X", "key": "k", "deceased": "no"}, "不是 boolean"),
            ("population", {"record_id": "X", "key": "k", "hukou_region": "4406"}, "region_code"),
            ("disability", {"record_id": "X", "key": "k", "grade": 2.5}, "不是 integer"),
            ("population", {"key": "k"}, "record_id"),
            (
                "elicense",
                {
                    "licence_type": "passport",
                    "holder_id": "h",
                    "number": "n",
                    "valid_from": "2020-01-01",
                    "valid_until": None,
                    "revoked": False,
                },
                "未知的证照类型",
            ),
        ],
    )
    def test_a_bad_line_names_its_file_and_line(self, tmp_path, table, row, message):
        reg = self.copy(tmp_path)
        path = reg / "v1" / f"{table}.jsonl"
        lines = len(path.read_text(encoding="utf-8").splitlines())
        self.append(path, row)
        with pytest.raises(RegistryInvalid) as exc:
            EmbeddedRegistry(reg)
        assert f"{table}.jsonl:{lines + 1}:" in str(exc.value) and message in str(exc.value)

    def test_a_duplicate_key_is_refused(self, tmp_path):
        reg = self.copy(tmp_path)
        path = reg / "v1" / "population.jsonl"
        first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
        self.append(path, first)
        with pytest.raises(RegistryInvalid, match="UNIQUE"):
            EmbeddedRegistry(reg)

    def test_a_manifest_of_another_format_or_source_is_refused(self, tmp_path):
        reg = self.copy(tmp_path)
        manifest = json.loads((reg / "manifest.json").read_text())
        (reg / "manifest.json").write_text(json.dumps({**manifest, "format": "other"}))
        with pytest.raises(RegistryInvalid, match="format"):
            EmbeddedRegistry(reg)
        manifest["tables"]["tax"] = "v1/population.jsonl"
        (reg / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(RegistryInvalid, match="'tax'"):
            EmbeddedRegistry(reg)
