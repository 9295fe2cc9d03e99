"""Fast in-process replay: the wire conversions done in plain Python (wire.py) give what the
protobuf round trips give, in-process replay decides every shipped case as a real server does,
and replaying in worker processes reports exactly what one process reports.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from miaopi_client import Client, load_cases, parallel
from miaopi_client.authoring_tools import run_rules_diff
from miaopi_client.cases import Case, split_lines
from miaopi_client.cli import main
from miaopi_client.client import CaseFileError, ClientError, decision_dict, facts_struct
from miaopi_client.parallel import PARALLEL_MIN_CASES, imap, jobs_for
from miaopi_client.replay import from_catalog, in_process, junit_xml, remote, replay, replay_file
from miaopi_client.wire import wire_decision, wire_facts
from miaopi_server.decision.catalog import Catalog
from miaopi_server.decision.decide import Decision, Reason
from miaopi_server.edge import convert
from miaopi_server.errors import CaseInvalid, ItemNotFound
from miaopi_server.lang.probes import MISSING
from miaopi_server.rules.model import LegalBasis, Material
from tests.conftest import TODAY, LiveServer
from tests.support import EXAMPLES, RULESETS

cases_module = importlib.import_module("miaopi_client.cases")  # the package exports names over it
CASE_FILES = [*sorted(RULESETS.glob("*.cases.jsonl")), EXAMPLES]
# A server cannot be handed recorded lookups: cases carrying them are decided remotely on
# their own facts, so only the others can be compared with a server's answers.
WINDOW_CASE_FILES = [p for p in CASE_FILES if not p.name.endswith(".sourced.cases.jsonl")]


def typed(v: Any) -> Any:
    """v with every scalar tagged by its type: True == 1.0 and 1 == 1.0 in Python, not here."""
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    return (type(v).__name__, repr(v))


def through_struct(facts: dict[str, Any]) -> Any:
    """What the server makes of facts: the Struct round trip, or the exception it raises."""
    try:
        return convert.facts_from_struct(facts_struct(facts))
    except (CaseInvalid, ClientError) as exc:
        return exc


def through_proto(d: Decision, full: bool = True) -> dict[str, Any]:
    """The decision as the client gets it through convert.decision, without what differs on
    every call (decision_id, decided_at)."""
    out = decision_dict(convert.decision_message(d, "", "", dt.datetime.now(dt.UTC)))
    del out["decided_at"]
    if full:
        return out
    lean = {k: out[k] for k in ("outcome", "missing_materials", "outputs") if k in out}
    return lean | {"reasons": [{"rule_id": r["rule_id"]} for r in out.get("reasons", [])]}


TRICKY = {
    "zero": 0,
    "int": 7,
    "negative": -12,
    "above_2_53": 2**53 + 1,
    "int64_max": 2**63 - 1,
    "above_uint64": 2**64 + 1,
    "big_negative": -(2**70) - 12345,
    "near_double_max": 10**308,
    "float": 0.1,
    "negative_zero": -0.0,
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
    "true": True,
    "false": False,
    "none": None,
    "chinese": "陈建国 · 南海区𠀋",
    "empty_text": "",
    "empty_list": [],
    "empty_object": {},
    "nested": {"a": [1, 2.5, True, None, "二", {"b": [[], {"c": 3}]}], "d": {"e": {"f": -1}}},
}


class TestWireFacts:
    @pytest.mark.parametrize("name", sorted(TRICKY))
    def test_same_as_the_struct_round_trip(self, name: str) -> None:
        """Every kind of JSON value comes out typed as the Struct round trip types it."""
        facts = {"subject": {"value": TRICKY[name], "list": [TRICKY[name]]}}
        assert typed(wire_facts(facts)) == typed(through_struct(facts))

    def test_all_at_once(self) -> None:
        facts = {"s": TRICKY, "t": [TRICKY, TRICKY]}
        assert typed(wire_facts(facts)) == typed(through_struct(facts))

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_non_finite_is_refused_as_the_server_refuses_it(self, bad: float) -> None:
        """NaN and infinities are CaseInvalid, naming the same fields as the server does."""
        facts = {"a": {"ok": 1, "x": bad, "l": [1, bad]}, "b": bad}
        with pytest.raises(CaseInvalid) as info:
            wire_facts(facts)
        want = through_struct(facts)
        assert isinstance(want, CaseInvalid)
        assert info.value.violations == want.violations

    @pytest.mark.parametrize("facts", [{"a": {"n": "x\ud800"}}, {"a": {"\udc00": 1}}])
    def test_lone_surrogate_is_the_cases_error(self, facts: dict[str, Any]) -> None:
        """A lone surrogate (a case file's "\\ud800") has no UTF-8 form and cannot travel in a
        Struct: `miaopi replay --target` died with a UnicodeEncodeError traceback; it is the
        case's INVALID_ARGUMENT, as `rules test` decides such a case."""
        with pytest.raises(ClientError) as info:
            facts_struct(facts)
        assert info.value.code == "INVALID_ARGUMENT"

    def test_beyond_a_double_is_the_cases_error(self) -> None:
        """A number no double holds cannot travel in a Struct: INVALID_ARGUMENT, not a crash."""
        facts = {"a": {"n": 10**309}}
        assert isinstance(want := through_struct(facts), ClientError)
        assert want.code == "INVALID_ARGUMENT"
        with pytest.raises(ClientError) as info:
            wire_facts(facts)
        assert info.value.code == "INVALID_ARGUMENT" and "超出范围" in info.value.message

    def test_shipped_cases(self) -> None:
        for c in (c for f in CASE_FILES for c in load_cases(f)):
            assert typed(wire_facts(c.facts)) == typed(through_struct(c.facts)), c.case_id


class TestWireDecision:
    def test_shipped_cases(self, catalog: Catalog) -> None:
        """Every shipped case's decision, as convert.decision + client.decision_dict give it."""
        decided = 0
        for c in (c for f in CASE_FILES for c in load_cases(f)):
            try:
                d = catalog.decide(c.item_code, wire_facts(c.facts), c.materials, TODAY)
            except (CaseInvalid, ItemNotFound):  # case errors have no decision to convert
                continue
            assert typed(wire_decision(d)) == typed(through_proto(d)), c.case_id
            assert typed(wire_decision(d, full=False)) == typed(through_proto(d, False))
            decided += 1
        assert decided > 40

    def test_every_field(self) -> None:
        """Dates, MISSING facts, empty strings, review due dates, nested output values."""
        basis = LegalBasis("b1", "中华人民共和国老年人权益保障法", "")
        d = Decision(
            item_code="GF00012000",
            version="2026.1",
            digest="sha256:00",
            outcome="MANUAL_REVIEW",
            reasons=(
                Reason("r1", "MANUAL_REVIEW", "需人工复核", basis, (("a.b", MISSING),), "a.b > 1"),
                Reason("r2", "APPROVE", "", None, (("a.c", dt.date(2026, 1, 2)), ("a.d", None))),
                Reason("r3", "APPROVE", "符合", basis, (("a.e", [1, "二", {"x": True}]),)),
            ),
            missing_materials=(Material("id_card", "居民身份证", "required", e_license=True),),
            pending_materials=(Material("photo", "", "deferrable"),),
            outputs={"amount": 200, "when": dt.date(2026, 2, 1), "tags": ["甲", 1.5], "n": None},
            as_of=dt.date(2026, 1, 2),
            derived={"applicant.age": 90, "applicant.birth_date": "1935-10-31", "ok": False},
            review_due=dt.date(2026, 1, 9),
            review_due_estimated=True,
        )
        assert typed(wire_decision(d)) == typed(through_proto(d))
        assert typed(wire_decision(d, full=False)) == typed(through_proto(d, False))

    def test_unusual_values_take_the_protobuf_path(self) -> None:
        """A value the direct path does not know gives what protobuf gives."""
        d = Decision("X", "1", "", "APPROVE", (), (), (), {"t": (1, 2)}, dt.date(2026, 1, 2), {})
        assert typed(wire_decision(d)) == typed(through_proto(d))


def test_lean_decisions_pass_and_fail_alike(catalog: Catalog) -> None:
    """The decisions a replay keeps (only what compare reads) judge every case as full ones."""
    cases = [c for f in CASE_FILES for c in load_cases(f)]
    full = replay(cases, from_catalog(catalog, TODAY))
    lean = replay(cases, from_catalog(catalog, TODAY, full=False))
    assert full.to_dict() == lean.to_dict()


# -- worker processes


def many_cases(n: int) -> list[str]:
    """n case lines cycling through the shipped ones with unique ids; some expect the wrong
    outcome or amount (failures), some are blank lines."""
    shipped = [
        json.loads(line)
        for f in CASE_FILES
        for line in f.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    out: list[str] = []
    for i in range(n):
        c = dict(shipped[i % len(shipped)])
        c["case_id"] = f"{c.get('case_id', 'case')}~{i}"
        if i % 97 == 5:
            c["expected"] = {**c["expected"], "outcome": "MANUAL_REVIEW"}
        if i % 89 == 7:  # a wrong amount, in whichever form the case checks outputs
            key = "outputs_exact" if "outputs_exact" in c["expected"] else "outputs"
            c["expected"] = {**c["expected"], key: {"monthly_amount": 1}}
        out.append(json.dumps(c, ensure_ascii=False))
        if i % 500 == 3:
            out.append("")
    return out


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class TestWorkers:
    def test_jobs(self) -> None:
        """Automatic: one process below the threshold; as asked otherwise."""
        assert jobs_for(0, PARALLEL_MIN_CASES - 1) == 1
        assert jobs_for(0, PARALLEL_MIN_CASES) >= 1
        assert jobs_for(3, 10) == 3

    @pytest.mark.parametrize("threads", [False, True], ids=["fork", "spawn"])
    def test_same_report_as_one_process(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], threads: bool
    ) -> None:
        """Totals, per-item counts, failures with line numbers, JSON and JUnit: identical
        with --jobs 2 (forked workers, or spawned ones when the process runs threads)."""
        path = tmp_path / "many.jsonl"
        path.write_text("\n".join(many_cases(3000)) + "\n", encoding="utf-8")
        base = ["replay", str(path), "--rulesets", str(RULESETS), "--today", "2026-11-23"]
        runs = {}
        for jobs in ("1", "2"):
            stop = threading.Event()
            other = threading.Thread(target=stop.wait)  # a live thread makes imap spawn
            if threads:
                other.start()
            try:
                junit = tmp_path / f"junit-{jobs}.xml"
                json_run = run_cli(capsys, *base, "--jobs", jobs, "--json", "--junit", str(junit))
                text_run = run_cli(capsys, *base, "--jobs", jobs)
            finally:
                stop.set()
                if threads:
                    other.join()
            runs[jobs] = (json_run, text_run, junit.read_bytes())
        assert runs["1"] == runs["2"]
        (code, out, _), (_, text, _), _ = runs["2"]
        report = json.loads(out)
        assert code == 1
        assert report["total"] == 3000 and 0 < report["failed"] < 100
        assert [f["line"] for f in report["failures"]] == sorted(
            f["line"] for f in report["failures"]
        )
        assert "合计 Total: 3000 个案例 cases" in text

    def test_same_bad_file_errors(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A bad case file is refused with the same lines named, however many workers."""
        lines = many_cases(600)
        lines[10] = lines[10][:-1]  # truncated JSON
        lines[400] = lines[3]  # a duplicate case_id
        lines[500] = '{"item_code": "GF00012000"}'
        path = tmp_path / "bad.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        base = ["replay", str(path), "--rulesets", str(RULESETS)]
        serial = run_cli(capsys, *base, "--jobs", "1")
        assert serial == run_cli(capsys, *base, "--jobs", "2")
        code, out, err = serial
        assert (code, out) == (2, "")
        assert [line.split(": ")[0] for line in err.splitlines()[1:]] == [
            f"  {path}:{n}" for n in (11, 401, 501)
        ]

    def test_jobs_needs_rulesets(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = run_cli(capsys, "replay", str(CASE_FILES[0]), "--jobs", "2")
        assert code == 2 and "--jobs needs --rulesets" in err
        code, _, err = run_cli(capsys, "replay", str(CASE_FILES[0]), "--jobs", "-1")
        assert code == 2

    def test_worker_start_failure_reaches_the_caller(self) -> None:
        """An initializer that raises fails the map instead of restarting workers forever."""
        with pytest.raises(ValueError, match="no rules here"):
            list(imap(2, _fail, ("no rules here",), _double, [(0, 1), (1, 2)]))

    def test_results_in_order(self) -> None:
        assert list(imap(2, _nothing, (), _double, [(i, i) for i in range(50)])) == [
            2 * i for i in range(50)
        ]


class TestByteRanges:
    """The case file is read once and cut into byte ranges of whole lines, each parsed and
    decided where it runs (parallel.line_ranges, cases.parse_unit). Units of a few dozen
    lines here spread a small file over many units and both workers."""

    @pytest.fixture(autouse=True)
    def small_units(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(parallel, "CHUNK", 37)

    def test_ranges_hold_every_line_once(self) -> None:
        rng = random.Random(17)
        samples = [b"", b"a", b"\n", b"\n\n", b"a\r\nb", b"a\nb\n"] + [
            bytes(rng.choice(b"ab\r\n") for _ in range(rng.randint(0, 80))) for _ in range(500)
        ]
        for data in samples:
            for size in (1, 2, 3, 37):
                units = list(parallel.line_ranges(data, size))
                got: list[bytes] = []
                for start, stop, first, n in units:
                    part = split_lines(data[start:stop])
                    assert (first, len(part)) == (len(got) + 1, n)
                    got += part
                assert got == (split_lines(data) if data else [])
                assert [u[0] for u in units[1:]] == [u[1] for u in units[:-1]]

    def test_report_in_file_order_as_one_process(self, tmp_path: Path, catalog: Catalog) -> None:
        """Forked workers, one process and the plain replay of the loaded cases: the same
        report (every case in file order, failures with their lines), the same JUnit."""
        lines = many_cases(400)
        lines[20] += "\r"  # CRLF line ends and white-space lines are read as before
        lines.insert(30, " \u3000 ")
        path = tmp_path / "many.jsonl"
        path.write_text("\n".join(lines), encoding="utf-8")  # no final line end
        assert len(list(parallel.line_ranges(path.read_bytes(), parallel.CHUNK))) > 10
        reference = replay(load_cases(path), from_catalog(catalog, TODAY))
        one = replay_file(path, RULESETS, TODAY, jobs=1)
        two = replay_file(path, RULESETS, TODAY, jobs=2)
        assert one.to_dict() == two.to_dict() == reference.to_dict()
        assert junit_xml(one, str(path)) == junit_xml(two, str(path))
        assert [r.line for r in two.results] == sorted(r.line for r in two.results)
        assert two.total == 400 and 0 < two.failed < 20

    def test_bad_lines_in_later_units(self, tmp_path: Path) -> None:
        """Bad lines far into the file (other units, other workers) are named with their own
        line numbers, all at once and in line order, exactly as load_cases names them."""
        lines = many_cases(600)
        lines[150] = lines[150][:-1]  # truncated JSON
        lines[170] = '{"item_code": "GF00012000", "expected": {"outcome": "NaN"}}'
        lines[400] = lines[3]  # a duplicate case_id
        lines[520] = '{"item_code": "GF00012000"}'
        lines[598] = "[1]"
        path = tmp_path / "bad.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(CaseFileError) as loaded:
            load_cases(path)
        assert [p.split(": ")[0] for p in loaded.value.problems] == [
            f"{path}:{n}" for n in (151, 171, 401, 521, 599)
        ]
        for jobs in (1, 2):
            with pytest.raises(CaseFileError) as replayed:
                replay_file(path, RULESETS, TODAY, jobs=jobs)
            assert replayed.value.problems == loaded.value.problems
            with pytest.raises(CaseFileError) as diffed:
                run_rules_diff(RULESETS, RULESETS, path, TODAY, jobs=jobs)
            assert diffed.value.problems == loaded.value.problems

    def test_not_utf8_far_into_the_file(self, tmp_path: Path) -> None:
        """A byte that is not UTF-8 in a later unit: the file cannot be read, as a whole."""
        data = "\n".join(many_cases(300)).encode("utf-8")
        at = data.index(b'"case_id"', len(data) * 3 // 4)
        data = data[:at] + b'"note": "\xff", ' + data[at:]
        path = tmp_path / "latin1.jsonl"
        path.write_bytes(data)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            expected = [f"{path}: cannot read: {exc}"]
        with pytest.raises(CaseFileError) as loaded:
            load_cases(path)
        assert loaded.value.problems == expected
        for jobs in (1, 2):
            with pytest.raises(CaseFileError) as replayed:
                replay_file(path, RULESETS, TODAY, jobs=jobs)
            assert replayed.value.problems == expected
            with pytest.raises(CaseFileError) as diffed:
                run_rules_diff(RULESETS, RULESETS, path, TODAY, jobs=jobs)
            assert diffed.value.problems == expected

    def test_rules_diff_on_the_file_as_on_loaded_cases(self, tmp_path: Path) -> None:
        path = tmp_path / "many.jsonl"
        path.write_text("\n".join(many_cases(300)) + "\n", encoding="utf-8")
        cases = load_cases(path)

        def stable(r: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in r.items() if k not in ("seconds", "jobs")}

        loaded = stable(run_rules_diff(RULESETS, RULESETS, cases, TODAY, jobs=1, decide_all=True))
        assert loaded["total"] == 300
        for jobs in (1, 2):
            on_file = run_rules_diff(RULESETS, RULESETS, path, TODAY, jobs=jobs, decide_all=True)
            assert stable(on_file) == loaded


# Lines orjson refuses or might read otherwise (integers beyond 64 bits), and lines it reads:
# parse_line must give what json alone gives.
PARSE_LINES = [
    b'{"item_code": "GF00012000", "facts": {"n": 1}, "expected": {"outcome": "APPROVE"}}',
    b'{"item_code": "X", "expected": {"outputs": {"n": 123456789012345678901234567890}}}',
    b'{"item_code": "X", "expected": {"outputs": {"n": -9223372036854775809}}}',
    b'{"item_code": "X", "expected": {"outputs": {"n": 18446744073709551615}}}',
    b'{"item_code": "X", "expected": {}, "sourced": {"a": [{"n": 99999999999999999999}]}}',
    b'{"item_code": "X", "facts": {"n": 123456789012345678901234567890}, "expected": {}}',
    b'{"item_code": "X", "facts": {"n": NaN, "m": -Infinity}, "expected": {}}',
    b'{"item_code": "X", "facts": {"n": 1e400}, "expected": {}}',
    b'{"item_code": "X", "facts": {"n": 1.5e-400, "z": -0, "y": -0.0}, "expected": {}}',
    b'{"item_code": "X", "facts": {"s": "\\ud800"}, "expected": {}}',
    b'{"item_code": "X", "facts": {"s": "\\u4e2d \xe4\xb8\xad \xe2\x80\xa8"}, "expected": {}}',
    b'{"item_code": "X", "item_code": "Y", "expected": {}}',
    b'{"item_code": "X", "expected": {}}\r',
    b"\xef\xbb\xbf{}",
    b'{"item_code": "X", "facts": {"s": "a\tb"}, "expected": {}}',
    b'{"item_code": "X", "expected": {}} x',
    b'{"item_code": "X", "expected": {}',
    b'{"item_code" "X"}',
    b"[1, 2",
    b"tru",
    b"",
    b"\r",
    b"  \t ",
    " \u3000 ".encode(),
    b"[]",
    b"7",
    b'{"case_id": 7, "item_code": "", "materials": [1], "expected": []}',
]


@pytest.mark.parametrize("raw", PARSE_LINES, ids=range(len(PARSE_LINES)))
def test_parse_line_as_json_reads_it(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """orjson reads lines first; the result (or the problem, word for word) is json's. Fact
    numbers are compared as the wire types them (every one a double: wire.wire_facts)."""

    def view(parsed: Any) -> Any:
        if not isinstance(parsed, Case):
            return parsed
        try:
            facts = typed(wire_facts(parsed.facts))
        except Exception as exc:  # e.g. NaN: refused as the server refuses it
            facts = repr(exc)
        rest = (parsed.case_id, parsed.item_code, parsed.materials, parsed.expected)
        return typed((*rest, parsed.line, parsed.sourced)), facts

    path = Path("cases.jsonl")
    fast = view(cases_module.parse_line(path, 7, raw))

    def refuse(_: Any) -> Any:
        raise orjson.JSONDecodeError("refused", "", 0)

    monkeypatch.setattr(
        cases_module,
        "orjson",
        SimpleNamespace(loads=refuse, JSONDecodeError=orjson.JSONDecodeError),
    )
    slow = view(cases_module.parse_line(path, 7, raw))
    assert fast == slow


def _fail(message: str) -> None:
    raise ValueError(message)


def _nothing() -> None:
    pass


def _double(unit: tuple[int, int]) -> int:
    return unit[0] * 2


# -- against a real server (last: its threads would make the worker tests spawn)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from miaopi_server.settings import Settings

    s = LiveServer(
        Settings(listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path_factory.mktemp("s"))
    )
    yield s
    s.stop()


def stable(d: dict[str, Any] | None) -> Any:
    """A decision without what only a server adds."""
    if d is None:
        return None
    return typed({k: v for k, v in d.items() if k not in ("decision_id", "decided_at", "receipt")})


def test_huge_number_is_an_invalid_case_both_ways(server: LiveServer, tmp_path: Path) -> None:
    """A case file holding an integer beyond a double replays as INVALID_ARGUMENT in-process
    and against a server alike, and the other cases still replay."""
    path = tmp_path / "c.jsonl"
    huge = '{"case_id": "huge", "item_code": "GF00012000", "facts": {"applicant": {"age": 1%s}}, '
    huge = huge % ("0" * 400) + '"expected": {"outcome": "INVALID_ARGUMENT"}}'
    shipped = next(iter(load_cases(CASE_FILES[0])))
    other = {"case_id": "ok", "item_code": shipped.item_code, "facts": shipped.facts,
             "materials": list(shipped.materials), "expected": shipped.expected}  # fmt: skip
    path.write_text(huge + "\n" + json.dumps(other, ensure_ascii=False) + "\n", encoding="utf-8")
    cases = load_cases(path)
    with Client(server.target) as c:
        want = replay(cases, remote(c))
    got = replay(cases, in_process(RULESETS))
    assert got.to_dict() == want.to_dict()
    assert [(r.case_id, r.outcome, r.passed) for r in got.results] == [
        ("huge", "INVALID_ARGUMENT", True),
        ("ok", shipped.expected["outcome"], True),
    ]


@pytest.mark.parametrize("path", WINDOW_CASE_FILES, ids=lambda p: p.name)
def test_in_process_equals_remote(server: LiveServer, path: Path) -> None:
    """Every shipped case is decided in-process exactly as a real server decides it: the
    same report, the same decision (full shape, types included)."""
    cases = load_cases(path)
    seen: dict[str, list[Any]] = {"local": [], "remote": []}

    def recording(name: str, fn: Any) -> Any:
        def decide(case: Any) -> Any:
            outcome, d = fn(case)
            seen[name].append((outcome, stable(d)))
            return outcome, d

        return decide

    with Client(server.target) as c:
        want = replay(cases, recording("remote", remote(c)))
    got = replay(cases, recording("local", in_process(RULESETS)))
    assert got.to_dict() == want.to_dict()
    assert seen["local"] == seen["remote"]
    assert got.failed == 0
