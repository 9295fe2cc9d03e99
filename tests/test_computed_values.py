"""Issue 12: date arithmetic in outputs and derived facts (`compute:`), typed and checked when
the item is compiled, counted as in conditions (民法典 Art. 200-204), computed from the case's
facts and application date only."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_server.decision.catalog import Catalog, load_catalog
from miaopi_server.decision.explain import explain
from miaopi_server.rules.directory import compile_directory
from miaopi_server.rules.lint import lint_directory
from tests.conftest import LiveServer
from tests.support import REMEDIES, decide_request, rule_file

ITEM = (
    rule_file("""\
    form:
      event.date: {type: date, label: 事件日期, required: true}
      licence.since: {type: date, label: 原证起始日}
    derived:
      benefit.start: {compute: application.date + 1 month, label: 补助起始日}
      benefit.waited: {compute: days between event.date and application.date}
      benefit.review: {compute: benefit.start + 1 year - 1 day}
    rules:
      - id: in_time
        when: benefit.waited <= 60 and event.date <= application.date
        outcome: APPROVE
        message: 六十日内申请
        basis: art1
        outputs:
          start_date:
            - {compute: benefit.start}
          valid_until:
            - {when: licence.since is present, compute: licence.since + 5 years - 1 day}
            - {compute: application.date - 1 year}
          days_waited:
            - {compute: benefit.waited}
          review_on:
            - {compute: benefit.review}
      - id: late
        when: benefit.waited > 60
        outcome: REJECT
        message: 超过六十日
        basis: art1
    """)
    + REMEDIES
)
TODAY = dt.date(2030, 1, 1)  # never used: every case below gives its application date


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("computed") / "rules"
    root.mkdir()
    (root / "t.yaml").write_text(ITEM, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def catalog(rules: Path) -> Iterator[Catalog]:
    cat = load_catalog(rules)
    yield cat
    cat.close()


def decide(catalog: Catalog, applied: str, event: str, since: str | None = None) -> Any:
    facts: dict[str, Any] = {"event": {"date": event}, "application": {"date": applied}}
    if since is not None:
        facts["licence"] = {"since": since}
    return catalog.decide("T0001", facts, [], TODAY)


class TestBoundaries:
    @pytest.mark.parametrize(
        ("applied", "start"),
        [
            ("2024-01-31", "2024-02-29"),  # 31 Jan + 1 month: the last day of a leap February
            ("2025-01-31", "2025-02-28"),  # ... of a common February
            ("2025-03-31", "2025-04-30"),  # April has no 31st
            ("2024-02-29", "2024-03-29"),
            ("2024-12-31", "2025-01-31"),  # across the year
        ],
    )
    def test_one_month_later_in_derived_fact_and_output(self, catalog, applied, start):
        d = decide(catalog, applied, applied)
        assert d.derived["benefit.start"] == start
        assert d.outputs["start_date"] == start

    @pytest.mark.parametrize(
        ("applied", "year_before"),
        [
            ("2024-02-29", "2023-02-28"),  # 29 Feb - 1 year: 28 Feb
            ("2025-02-28", "2024-02-28"),  # the corresponding day exists in the leap year
            ("2025-03-01", "2024-03-01"),
        ],
    )
    def test_a_year_before_in_an_output(self, catalog, applied, year_before):
        assert decide(catalog, applied, applied).outputs["valid_until"] == year_before

    def test_periods_chain_left_to_right(self, catalog):
        """2024-01-31 + 1 month = 2024-02-29, + 1 year = 2025-02-28, - 1 day = 2025-02-27
        (a derived fact computed from an earlier one)."""
        assert decide(catalog, "2024-01-31", "2024-01-31").derived["benefit.review"] == "2025-02-27"

    def test_licence_valid_until(self, catalog):
        """Five years from 29 Feb 2024 end on 28 Feb 2029; the day before is 27 Feb."""
        d = decide(catalog, "2024-03-01", "2024-03-01", since="2024-02-29")
        assert d.outputs["valid_until"] == "2029-02-27"

    def test_days_between_as_fact_and_output(self, catalog):
        d = decide(catalog, "2024-03-01", "2024-01-31")
        assert d.derived["benefit.waited"] == 30
        assert d.outputs["days_waited"] == 30
        late = decide(catalog, "2024-04-01", "2024-01-31")
        assert (late.outcome, late.outputs) == ("REJECT", {})  # a refusal has no outputs

    def test_same_case_same_values_on_any_day(self, catalog):
        """Only the case's facts and application date count, never the day it is decided."""
        facts = {"event": {"date": "2024-01-31"}, "application": {"date": "2024-01-31"}}
        a = catalog.decide("T0001", facts, [], dt.date(2024, 2, 1))
        b = catalog.decide("T0001", facts, [], dt.date(2031, 7, 9))
        assert (a.outputs, a.derived) == (b.outputs, b.derived)

    def test_explain_shows_what_an_output_computes_to(self, catalog):
        facts = {"event": {"date": "2024-01-31"}, "application": {"date": "2024-01-31"}}
        e = explain(catalog, "T0001", facts, [], TODAY).to_dict()
        [start] = [o for o in e["outputs"] if o["output"] == "start_date"]
        assert (start["compute"], start["value"], start["selected"]) == (
            "benefit.start",
            "2024-02-29",
            True,
        )


class TestMissingFacts:
    def test_a_missing_fact_leaves_the_value_out(self, tmp_path):
        """A computed value reading a fact the case lacks is missing, like the fact: the output
        is left out (not 0, not an error)."""
        text = ITEM.replace(
            "event.date: {type: date, label: 事件日期, required: true}",
            "event.date: {type: date, label: 事件日期}\n  other.date: {type: date}",
        ).replace("- {compute: benefit.waited}", "- {compute: other.date + 1 day}")
        root = tmp_path / "rules"
        root.mkdir()
        (root / "t.yaml").write_text(text, encoding="utf-8")
        cat = load_catalog(root)
        try:
            d = cat.decide("T0001", {"event": {"date": "2024-01-31"}}, [], dt.date(2024, 2, 1))
            assert d.outcome == "APPROVE"
            assert "days_waited" not in d.outputs
            assert d.outputs["start_date"] == "2024-03-01"  # application.date defaulted
            d = cat.decide("T0001", {"application": {"date": "2024-01-31"}}, [], TODAY)
            assert "benefit.waited" not in d.derived  # no event date, no number of days
        finally:
            cat.close()


class TestOverGrpc:
    def test_outputs_reach_the_window_as_dates(self, rules, tmp_path):
        from miaopi_server.settings import Settings

        server = LiveServer(Settings(listen="127.0.0.1:0", rulesets=rules, state_dir=tmp_path))
        try:
            with grpc.insecure_channel(server.target) as channel:
                stub = pb_grpc.ApprovalServiceStub(channel)
                facts = {"event": {"date": "2024-01-31"}, "application": {"date": "2024-01-31"}}
                d = stub.Decide(decide_request("T0001", facts, [])).decision
        finally:
            server.stop()
        assert d.outputs["start_date"] == "2024-02-29"
        assert d.outputs["valid_until"] == "2023-01-31"
        assert d.outputs["days_waited"] == 0
        assert d.derived_facts["benefit.review"] == "2025-02-27"


# -- lint -----------------------------------------------------------------------------------


def _lint(tmp_path: Path, text: str) -> list[tuple[str, int, str]]:
    root = tmp_path / "rules"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    (root / "t.yaml").write_text(text, encoding="utf-8")
    return [(d.code, d.line, d.message) for d in lint_directory(root)]


class TestLint:
    def test_the_item_above_is_clean(self, tmp_path):
        assert _lint(tmp_path, ITEM) == []

    @pytest.mark.parametrize(
        ("old", "new", "code", "words"),
        [
            # a period added to a number
            (
                "compute: benefit.start + 1 year - 1 day",
                "compute: benefit.waited + 1 year",
                "MP313",
                "只有日期可以加减期间",
            ),
            # days between a date and a number
            (
                "- {compute: benefit.waited}",
                "- {compute: days between benefit.waited and event.date}",
                "MP313",
                "days between 的两边须为日期",
            ),
            # neither a date nor a number
            (
                "- {compute: benefit.waited}",
                """- {compute: '"六十日"'}""",
                "MP361",
                "只能是日期或数字",
            ),
            # a computed fact reading one computed after it
            (
                "compute: application.date + 1 month",
                "compute: benefit.review - 1 year",
                "MP362",
                "benefit.review 在此之后",
            ),
            # a field the form does not have
            (
                "- {compute: benefit.waited}",
                "- {compute: benefit.waitd + 1 day}",
                "MP301",
                "benefit.waitd",
            ),
            # a comparison is a condition, not a value
            (
                "- {compute: benefit.waited}",
                "- {compute: benefit.waited > 3}",
                "MP204",
                "计算式已结束",
            ),
        ],
    )
    def test_type_errors_are_located_errors(self, tmp_path, old, new, code, words):
        assert old in ITEM
        found = _lint(tmp_path, ITEM.replace(old, new))
        assert [c for c, _, _ in found] == [code], found
        [(_, line, message)] = found
        assert words in message
        expected_line = (
            ITEM.replace(old, new)
            .splitlines()
            .index(next(x for x in ITEM.replace(old, new).splitlines() if new in x))
        )
        assert line == expected_line + 1

    def test_compiling_refuses_what_lint_reports(self, tmp_path):
        """The server loads through the same compiler: a type error in compute refuses the
        file there too."""
        root = tmp_path / "rules"
        root.mkdir()
        bad = ITEM.replace("- {compute: benefit.waited}", "- {compute: benefit.waited + 1 day}")
        (root / "t.yaml").write_text(bad, encoding="utf-8")
        _, diags = compile_directory(root)
        assert [d.code for d in diags if d.severity == "error"] == ["MP313"]

    def test_value_and_compute_are_one_or_the_other(self, tmp_path):
        text = ITEM.replace("- {compute: benefit.waited}", "- {compute: benefit.waited, value: 1}")
        assert [c for c, _, _ in _lint(tmp_path, text)] == ["MP102"]
        text = ITEM.replace(
            "benefit.start: {compute: application.date + 1 month, label: 补助起始日}",
            "benefit.start: {compute: application.date + 1 month, function: age}",
        )
        assert [c for c, _, _ in _lint(tmp_path, text)] == ["MP102"]

    def test_a_field_read_only_by_compute_is_read(self, tmp_path):
        """licence.since is read only by an output's compute (and its `when`): no MP403; a
        computed fact only an output reads is not unread either."""
        text = ITEM.replace(
            "- {when: licence.since is present, compute: licence.since + 5 years - 1 day}",
            "- {when: event.date is present, compute: licence.since + 5 years - 1 day}",
        ).replace(
            "benefit.waited <= 60 and event.date <= application.date",
            "benefit.waited <= 60",
        )
        assert _lint(tmp_path, text) == []
