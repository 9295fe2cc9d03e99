"""Effective-dated rule-file versions: each case is decided by the version in force on its
application.date, and the catalogue shows every version."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from miaopi_server.decision.catalog import load_catalog
from miaopi_server.errors import CaseInvalid
from miaopi_server.rules.directory import compile_directory
from tests.support import RULESETS, SENIOR, SENIOR_FILE, SENIOR_MATERIALS, with_facts

TODAY = dt.date(2026, 11, 23)


def two_versions(tmp_path: Path, until: str = "2026-06-30", start: str = "2026-07-01") -> Path:
    """The shipped senior allowance until `until`, and a 2026.2 version (80-89 band: 120 yuan)
    from `start`."""
    root = tmp_path / "rules"
    shutil.copytree(RULESETS, root)
    old = root / SENIOR_FILE
    text = old.read_text(encoding="utf-8")
    old.write_text(
        text.replace('version: "2024.1"', f'version: "2024.1"\neffective_until: {until}'),
        encoding="utf-8",
    )
    new = text.replace('version: "2024.1"', f'version: "2026.2"\neffective_from: {start}')
    new = new.replace(
        "{when: applicant.age >= 80, value: 100}", "{when: applicant.age >= 80, value: 120}"
    )
    (root / "GF00012000-senior-allowance-2026-07.yaml").write_text(new, encoding="utf-8")
    return root


def eighty_on(day: str) -> dict:
    from tests.support import resident_id

    return with_facts(SENIOR, applicant__id_number=resident_id("1940-01-01"), application__date=day)


class TestSelection:
    @pytest.mark.parametrize(
        ("day", "version", "amount"),
        [
            ("2026-06-30", "2024.1", 100),
            ("2026-07-01", "2026.2", 120),
            ("2027-01-01", "2026.2", 120),
        ],
    )
    def test_version_in_force_on_application_date(self, tmp_path, day, version, amount):
        """The last day of the old version and the first day of the new one decide differently."""
        catalog = load_catalog(two_versions(tmp_path))
        try:
            d = catalog.decide("GF00012000", eighty_on(day), SENIOR_MATERIALS, TODAY)
            assert (d.version, d.outputs["monthly_amount"]) == (version, amount)
        finally:
            catalog.close()

    def test_no_version_in_force_is_an_input_error(self, tmp_path):
        """A date before every version is refused on application.date."""
        root = two_versions(tmp_path)
        old = root / SENIOR_FILE
        old.write_text(
            old.read_text(encoding="utf-8").replace(
                'version: "2024.1"', 'version: "2024.1"\neffective_from: 2020-01-01'
            ),
            encoding="utf-8",
        )
        catalog = load_catalog(root)
        try:
            with pytest.raises(CaseInvalid) as info:
                catalog.decide("GF00012000", eighty_on("2019-12-31"), SENIOR_MATERIALS, TODAY)
            assert [v.field for v in info.value.violations] == ["facts.application.date"]
        finally:
            catalog.close()

    def test_current_version(self, tmp_path):
        """The catalogue's current version is the one in force today."""
        catalog = load_catalog(two_versions(tmp_path))
        try:
            assert catalog.current("GF00012000", dt.date(2026, 1, 1)).item.version == "2024.1"
            assert catalog.current("GF00012000", TODAY).item.version == "2026.2"
            assert [v.item.version for v in catalog.versions_of("GF00012000")] == [
                "2024.1",
                "2026.2",
            ]
        finally:
            catalog.close()

    def test_overlapping_versions_refused(self, tmp_path):
        """Two versions in force on the same day are a rule-file error."""
        root = two_versions(tmp_path, until="2026-07-01")
        codes = [d.code for d in compile_directory(root)[1]]
        assert codes == ["MP111"]
