"""miaopi_client: the gRPC client, case files, replay, rendering and the `miaopi` CLI.

A real server runs in-process on port 0 (grpc.aio on its own event loop in a thread), so the
client, the CLI and remote replay are exercised over the wire.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from miaopi.v1 import approval_pb2 as pb
from miaopi_client import (
    CaseFileError,
    Client,
    ClientError,
    MiaopiClientError,
    load_cases,
    render,
    replay,
)
from miaopi_client.cases import compare
from miaopi_client.cli import main
from miaopi_client.client import decision_dict
from miaopi_client.replay import DecideFn, in_process, remote
from miaopi_server.app import create_server
from miaopi_server.settings import Settings
from tests.support import EXAMPLES, RULESETS

ITEM_CODES = ["BA00027000", "GF00012000", "GF00034001", "XK00051000"]

SENIOR_90 = {  # ex-0001: 90 years old on 2026-06-15, local hukou -> APPROVE, 200 yuan
    "applicant": {"name": "陈建国", "id_number": "440605193510318837", "hukou_region": "440605"},
    "application": {"date": "2026-06-15"},
}
SENIOR_MATERIALS = ["id_card", "hukou_book", "bank_account"]
THREE_BAD_FIELDS = {
    "applicant": {"name": 3, "id_number": "123", "hukou_region": "abc"},
    "application": {"date": "2026-06-15"},
}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server on 127.0.0.1:<free port>; grpc.aio needs its loop running, so the loop
    runs in a thread for the whole module. Its log lines are captured: unconfigured structlog
    prints to stdout, which would mix with the CLI output under test."""
    with capture_logs():
        yield from _serve(tmp_path_factory.mktemp("state"))


def _serve(state_dir: Path) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="miaopi-test-server", daemon=True)
    thread.start()
    settings = Settings(
        listen="127.0.0.1:0", rulesets=RULESETS, state_dir=state_dir, insecure_no_auth=True
    )
    running = asyncio.run_coroutine_threadsafe(create_server(settings), loop).result(30)
    try:
        yield f"127.0.0.1:{running.port}"
    finally:
        asyncio.run_coroutine_threadsafe(running.server.stop(None), loop).result(30)
        running.catalog.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@pytest.fixture(scope="module")
def client(target: str) -> Iterator[Client]:
    with Client(target) as c:
        yield c


@pytest.fixture(scope="module")
def local() -> DecideFn:
    return in_process(RULESETS)


@pytest.fixture
def closed_port() -> str:
    """An address nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"127.0.0.1:{port}"


def write_cases(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines)
        + "\n",
        encoding="utf-8",
    )
    return path


class TestClient:
    def test_list_items(self, client: Client) -> None:
        """ListItems returns the four sample items ordered by code, as snake_case dicts."""
        items = client.list_items()
        assert [i["code"] for i in items] == ITEM_CODES
        assert all("type_name" in i and "ruleset" in i for i in items)

    def test_get_item_form_and_materials(self, client: Client) -> None:
        """GetItem carries form fields with types and the material checklist."""
        item = client.get_item("GF00012000")
        fields = {f["path"]: f for f in item["form_fields"]}
        assert fields["applicant.id_number"]["type"] == "FIELD_TYPE_RESIDENT_ID"
        assert fields["applicant.id_number"]["required"] is True
        materials = {m["id"]: m for m in item["materials"]}
        assert {"id_card", "hukou_book", "bank_account"} <= set(materials)
        assert materials["id_card"]["need"] == "MATERIAL_NEED_REQUIRED"

    def test_get_unknown_item(self, client: Client) -> None:
        """An unknown item code is NOT_FOUND."""
        with pytest.raises(ClientError) as info:
            client.get_item("XX99999000")
        assert info.value.code == "NOT_FOUND"

    def test_decide_approve(self, client: Client) -> None:
        """An eligible case is approved with its monthly amount; outcomes lose the enum prefix."""
        d = client.decide(
            "GF00012000",
            SENIOR_90,
            SENIOR_MATERIALS,
            request_id="req-1",
            window_id="w-1",
            operator_id="op-1",
        )
        assert d["outcome"] == "APPROVE"
        assert d["outputs"]["monthly_amount"] == 200
        assert d["request_id"] == "req-1"
        assert d["as_of_date"] == "2026-06-15"
        assert {r["outcome"] for r in d["reasons"]} == {"APPROVE"}
        assert d["ruleset"]["digest"].startswith("sha256:")

    def test_invalid_case_names_every_field(self, client: Client) -> None:
        """INVALID_ARGUMENT carries every bad field at once as (field, description) pairs."""
        with pytest.raises(ClientError) as info:
            client.decide("GF00012000", THREE_BAD_FIELDS, SENIOR_MATERIALS)
        err = info.value
        assert err.code == "INVALID_ARGUMENT"
        assert isinstance(err, MiaopiClientError)
        fields = [f for f, _ in err.violations]
        assert {
            "facts.applicant.name",
            "facts.applicant.id_number",
            "facts.applicant.hukou_region",
        } <= set(fields)
        assert all(description for _, description in err.violations)

    def test_unknown_item(self, client: Client) -> None:
        """Deciding an unknown item is NOT_FOUND, with no violations."""
        with pytest.raises(ClientError) as info:
            client.decide("XX99999000", {}, [])
        assert (info.value.code, info.value.violations) == ("NOT_FOUND", [])

    def test_unreachable(self, closed_port: str) -> None:
        """A server that is not there is UNAVAILABLE, raised as ClientError."""
        with Client(closed_port, timeout=5) as c, pytest.raises(ClientError) as info:
            c.list_items()
        assert info.value.code == "UNAVAILABLE"


class TestDecisionDict:
    def test_outcomes_lose_prefix(self) -> None:
        """Decision and reason outcomes become APPROVE/REJECT/MANUAL_REVIEW; the rest is as is."""
        msg = pb.Decision(
            decision_id="d",
            outcome=pb.OUTCOME_MANUAL_REVIEW,
            reasons=[pb.Reason(rule_id="r", outcome=pb.OUTCOME_REJECT)],
            review_due_date="2026-06-22",
        )
        d = decision_dict(msg)
        assert d["outcome"] == "MANUAL_REVIEW"
        assert d["reasons"][0] == {"rule_id": "r", "outcome": "REJECT"}
        assert d["review_due_date"] == "2026-06-22"


class TestLoadCases:
    def test_examples(self) -> None:
        """The shared examples load with ids, line numbers and expectations."""
        cases = load_cases(EXAMPLES)
        assert len(cases) == 13
        assert (cases[0].case_id, cases[0].line, cases[0].item_code) == ("ex-0000", 1, "GF00012000")
        assert cases[0].expected["outputs"] == {"monthly_amount": 30}

    def test_every_bad_line_reported(self, tmp_path: Path) -> None:
        """All bad lines are reported together, each as file:line and its problem."""
        good = {"case_id": "a", "item_code": "GF00012000", "expected": {"outcome": "REJECT"}}
        path = write_cases(
            tmp_path / "c.jsonl",
            [
                good,
                "{not json",
                {"case_id": "b", "expected": {}},
                "",
                {
                    "case_id": "c",
                    "item_code": "GF00012000",
                    "materials": "id_card",
                    "expected": {"outcome": "YES"},
                },
                {**good},
            ],
        )
        with pytest.raises(CaseFileError) as info:
            load_cases(path)
        problems = info.value.problems
        assert len(problems) == 4
        assert problems[0].startswith(f"{path}:2: invalid JSON")
        assert problems[1] == f"{path}:3: missing item_code"
        assert problems[2].startswith(f"{path}:5: materials must be a list of strings")
        assert "expected.outcome must be one of" in problems[2]
        assert problems[3].startswith(f"{path}:6: duplicate case_id 'a'")

    def test_text_without_a_utf8_form_is_a_bad_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A lone surrogate (JSON's "\\ud800") in case_id, item_code or a material cannot
        travel in a request or be printed: the line is bad, named with all its problems
        (`replay --target` decided such a case, then died printing its summary)."""
        path = tmp_path / "c.jsonl"
        path.write_text(
            '{"case_id": "a\\ud800", "item_code": "GF00012000",'
            ' "expected": {"outcome": "REJECT"}}\n'
            '{"case_id": "b", "item_code": "GF\\udc00", "materials": ["证件", "x\\ud834"],'
            ' "expected": {"outcome": "REJECT"}}\n'
            '{"case_id": "c", "item_code": "GF00012000", "materials": ["身份证"],'
            ' "expected": {"outcome": "REJECT"}}\n',
            encoding="utf-8",
        )
        with pytest.raises(CaseFileError) as info:
            load_cases(path)
        assert info.value.problems == [
            f"{path}:1: case_id holds a lone surrogate (e.g. \\ud800), which no UTF-8 text can"
            " carry",
            f"{path}:2: item_code holds a lone surrogate (e.g. \\ud800), which no UTF-8 text can"
            " carry; materials holds a lone surrogate (e.g. \\ud800), which no UTF-8 text can"
            " carry",
        ]
        assert main(["--target", "127.0.0.1:1", "replay", str(path)]) == 2
        assert f"{path}:1: case_id holds a lone surrogate" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("document", "why"),
        [('{"tree_size": ' + "9" * 5000 + "}", "a number with too many digits"),
         ("[" * 100_000 + "]" * 100_000, "nested too deeply")],
    )  # fmt: skip
    def test_a_head_file_python_cannot_build_is_bad_input(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str, why: str
    ) -> None:
        """prove-consistency's FILE, as the case and facts files: a traceback before."""
        head = tmp_path / "head.json"
        head.write_text(document, encoding="utf-8")
        code = main(["audit", "prove-consistency", str(head), "--db", "x", "--key", "y"])
        assert code == 2
        assert f"cannot read tree head {head}: invalid JSON: {why}" in capsys.readouterr().err

    def test_line_separators_inside_strings(self, tmp_path: Path) -> None:
        """Only \\n (or \\r\\n) ends a line: U+2028 and U+0085 inside a string, which JSON
        writers leave unescaped, stay part of the case, and line numbers stay right."""
        a = {"case_id": "a\u2028b", "item_code": "GF00012000", "expected": {"outcome": "REJECT"}}
        b = {"case_id": "c\x85d", "item_code": "GF00012000", "expected": {"outcome": "REJECT"}}
        path = tmp_path / "c.jsonl"
        path.write_bytes(
            (
                json.dumps(a, ensure_ascii=False)
                + "\r\n"
                + json.dumps(b, ensure_ascii=False)
                + "\n"
            ).encode("utf-8")
        )
        cases = load_cases(path)
        assert [(c.case_id, c.line) for c in cases] == [("a\u2028b", 1), ("c\x85d", 2)]

    def test_typo_in_expected_is_an_error(self, tmp_path: Path) -> None:
        """An unknown key would silently check nothing, so it is refused."""
        path = write_cases(
            tmp_path / "c.jsonl", [{"item_code": "GF00012000", "expected": {"outcomes": "APPROVE"}}]
        )
        with pytest.raises(CaseFileError, match=r"c\.jsonl:1: unknown key\(s\) in expected"):
            load_cases(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that cannot be read is a CaseFileError, not an OSError."""
        with pytest.raises(CaseFileError, match="cannot read"):
            load_cases(tmp_path / "nope.jsonl")


DECISION = {
    "outcome": "REJECT",
    "outputs": {"monthly_amount": 100.0},
    "missing_materials": [
        {"id": "hukou_book", "name": "户口簿", "e_license": True},
        {"id": "bank_account", "name": "本人银行账户信息"},
    ],
}


class TestNumberOptions:
    def test_numbers_past_the_wire_or_below_zero_are_bad_input(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Before: alerts --after 10**23 and review list --page-size 10**11 were a ValueError
        traceback from protobuf, audit verify --from 10**23 an OverflowError from SQLite, and
        audit verify --from -3 checked from the first record as if it were not given. Now each
        is exit 2 naming the option and its range, before anything is read or sent."""
        huge = "99999999999999999999999"
        for argv, words in (
            (["alerts", "--after", huge], f"--after: must be from 0 to {2**63 - 1}, not {huge}"),
            (["alerts", "--after", "-1"], "--after: must be from 0 to"),
            (["review", "list", "--page-size", "99999999999"], "--page-size: must be from 0 to"),
            (["review", "list", "--limit", "-3"], "--limit: must be from 0 to"),
            (["audit", "verify", "--db", "x", "--key", "y", "--from", huge], "--from: must be"),
            (["audit", "verify", "--db", "x", "--key", "y", "--from", "-3"], "--from: must be"),
            (["audit", "verify", "--to", "1e3"], "--to: not a whole number: '1e3'"),
        ):
            assert main(["--target", "127.0.0.1:1", *argv]) == 2, argv
            err = capsys.readouterr().err
            assert words in err and "Traceback" not in err, argv


class TestCompare:
    @pytest.mark.parametrize(
        ("expected", "outcome", "decision", "mismatches"),
        [
            ({}, "APPROVE", DECISION, 0),  # nothing expected, nothing checked
            ({"outcome": "REJECT"}, "REJECT", DECISION, 0),
            ({"outcome": "APPROVE"}, "REJECT", DECISION, 1),
            ({"missing_materials": ["bank_account", "hukou_book"]}, "REJECT", DECISION, 0),
            ({"missing_materials": ["hukou_book"]}, "REJECT", DECISION, 1),  # exact set
            ({"missing_materials": []}, "APPROVE", {"outcome": "APPROVE"}, 0),  # absent = []
            ({"outputs": {"monthly_amount": 100}}, "REJECT", DECISION, 0),  # 100 == 100.0
            ({"outputs": {"monthly_amount": 200}}, "REJECT", DECISION, 1),
            (
                {"outputs": {"monthly_amount": True}},
                "REJECT",
                {"outputs": {"monthly_amount": 1}},
                1,
            ),  # a boolean is not a number
            ({"outputs": {"other": 1}}, "REJECT", DECISION, 1),
            ({"outcome": "NOT_FOUND"}, "NOT_FOUND", None, 0),
            ({"outcome": "APPROVE", "outputs": {"x": 1}}, "INVALID_ARGUMENT", None, 2),
        ],
    )
    def test_table(
        self,
        expected: dict[str, Any],
        outcome: str,
        decision: dict[str, Any] | None,
        mismatches: int,
    ) -> None:
        """Only what `expected` gives is checked: outcome, exact material set, outputs."""
        assert len(compare(expected, outcome, decision)) == mismatches

    def test_descriptions(self) -> None:
        """Mismatch texts say what was expected and what came back."""
        got = compare({"outcome": "APPROVE", "missing_materials": ["id_card"]}, "REJECT", DECISION)
        assert got[0] == "outcome: expected APPROVE, got REJECT"
        assert "not listed: id_card" in got[1]
        assert "unexpected: bank_account, hukou_book" in got[1]


class TestRender:
    def test_decision(self) -> None:
        """A decision shows its outcome, reasons with facts read, 一次性告知 and due date."""
        d = {
            "outcome": "MANUAL_REVIEW",
            "decision_id": "d-1",
            "as_of_date": "2026-12-30",
            "review_due_date": "2027-01-06",
            "review_due_date_estimated": True,
            "ruleset": {"version": "2024.1", "digest": "sha256:" + "ab" * 32},
            "reasons": [
                {
                    "rule_id": "very_old_verify",
                    "outcome": "MANUAL_REVIEW",
                    "message": "超高龄申请人需人工核验身份",
                    "legal_basis": {"citation": "《南海区高龄老人津贴发放办法》第五条"},
                    "facts_read": [
                        {"path": "applicant.age", "value": 106.0},
                        {"path": "applicant.deceased", "missing": True},
                    ],
                }
            ],
            "missing_materials": [{"id": "hukou_book", "name": "户口簿", "e_license": True}],
            "pending_materials": [{"id": "photo", "name": "照片"}],
            "outputs": {"monthly_amount": 300.0},
            "receipt": {"seq": "7", "record_hash": "cd" * 32},
        }
        text = render.decision(d)
        assert text.splitlines()[0] == "结果 Outcome: 转人工审核 MANUAL_REVIEW"
        assert "2027-01-06 (estimated" in text
        assert "sha256:abababababab)" in text
        assert "applicant.age=106," in text and "applicant.deceased=（缺失 missing）" in text
        assert "一次性告知" in text and "hukou_book  户口簿" in text
        assert "容缺后补" in text and "photo" in text
        assert "monthly_amount = 300" in text
        assert "#7 cdcdcdcd" in text
        assert "\x1b" not in text and "\\u" not in text

    def test_colour_only_on_request(self) -> None:
        """Colour wraps the outcome line only when asked (a TTY)."""
        assert "\x1b[" in render.decision({"outcome": "APPROVE"}, colour=True)
        assert not render.use_colour(io.StringIO())


def stable(d: dict[str, Any] | None) -> dict[str, Any] | None:
    """A decision without what differs on every call or exists only on a server (receipt)."""
    return (
        None
        if d is None
        else {k: v for k, v in d.items() if k not in ("decision_id", "decided_at", "receipt")}
    )


class TestCliCommands:
    def test_items(
        self, target: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`items` lists every item; the target may come from MIAOPI_TARGET."""
        monkeypatch.setenv("MIAOPI_TARGET", target)
        assert main(["items"]) == 0
        out = capsys.readouterr().out
        assert all(code in out for code in ITEM_CODES)
        assert "高龄老人津贴申领" in out

    def test_item_json(self, target: str, capsys: pytest.CaptureFixture[str]) -> None:
        """`item CODE --json` prints the item as JSON with Chinese unescaped."""
        assert main(["--target", target, "item", "GF00012000", "--json"]) == 0
        out = capsys.readouterr().out
        assert json.loads(out)["code"] == "GF00012000"
        assert "高龄老人津贴申领" in out

    def test_decide_readable(
        self, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`decide` prints the decision in readable Chinese, never \\u escapes."""
        facts = tmp_path / "facts.json"
        facts.write_text(json.dumps(SENIOR_90, ensure_ascii=False), encoding="utf-8")
        code = main(
            [
                "--target",
                target,
                "decide",
                "--item",
                "GF00012000",
                "--facts",
                str(facts),
                "--materials",
                ",".join(SENIOR_MATERIALS),
            ]
        )
        out = capsys.readouterr().out
        assert code == 0
        assert "符合高龄津贴申领条件" in out
        assert "通过 APPROVE" in out and "monthly_amount = 200" in out
        assert "\\u" not in out and "\x1b" not in out

    def test_decide_json_from_stdin(
        self, target: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`decide --facts - --json` reads stdin and prints parseable, unescaped JSON."""
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(SENIOR_90)))
        code = main(
            [
                "--target",
                target,
                "decide",
                "--item",
                "GF00012000",
                "--facts",
                "-",
                "--materials",
                "id_card, hukou_book,bank_account",
                "--json",
            ]
        )
        out = capsys.readouterr().out
        assert code == 0
        d = json.loads(out)
        assert (d["outcome"], d["outputs"]["monthly_amount"]) == ("APPROVE", 200)
        assert "符合高龄津贴申领条件" in out

    def test_decide_invalid_exits_2(
        self, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """INVALID_ARGUMENT exits 2 with every field violation on stderr."""
        facts = tmp_path / "bad.json"
        facts.write_text(json.dumps(THREE_BAD_FIELDS), encoding="utf-8")
        code = main(
            [
                "--target",
                target,
                "decide",
                "--item",
                "GF00012000",
                "--facts",
                str(facts),
                "--materials",
                ",".join(SENIOR_MATERIALS),
            ]
        )
        captured = capsys.readouterr()
        assert code == 2
        assert captured.out == ""
        for field in (
            "facts.applicant.name",
            "facts.applicant.id_number",
            "facts.applicant.hukou_region",
        ):
            assert field in captured.err

    def test_decide_not_found_exits_3(
        self, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An unknown item exits 3."""
        facts = tmp_path / "empty.json"
        facts.write_text("{}", encoding="utf-8")
        assert (
            main(["--target", target, "decide", "--item", "XX99999000", "--facts", str(facts)]) == 3
        )
        assert "NOT_FOUND" in capsys.readouterr().err

    def test_unreachable_exits_1(
        self, closed_port: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No server: exit 1 with one clear line on stderr, no traceback."""
        facts = tmp_path / "empty.json"
        facts.write_text("{}", encoding="utf-8")
        code = main(
            [
                "--target",
                closed_port,
                "--timeout",
                "5",
                "decide",
                "--item",
                "GF00012000",
                "--facts",
                str(facts),
            ]
        )
        err = capsys.readouterr().err
        assert code == 1
        assert err.startswith(f"miaopi: cannot reach server at {closed_port} (UNAVAILABLE)")
        assert len(err.strip().splitlines()) == 1
        assert "Traceback" not in err

    @pytest.mark.parametrize("content", ["[1, 2]", "{nope"])
    def test_bad_facts_file_exits_2(
        self, content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Facts that are not a JSON object are refused before any RPC."""
        facts = tmp_path / "f.json"
        facts.write_text(content, encoding="utf-8")
        assert main(["decide", "--item", "GF00012000", "--facts", str(facts)]) == 2
        assert "miaopi: facts" in capsys.readouterr().err


class TestReplay:
    def test_in_process_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Replaying the shared examples in-process passes all 13 and exits 0."""
        code = main(["replay", str(EXAMPLES), "--rulesets", str(RULESETS), "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0
        assert (report["total"], report["passed"], report["failed"]) == (13, 13, 0)
        assert report["items"]["GF00012000"] == {"passed": 3, "failed": 0}
        assert report["outcomes"]["NOT_FOUND"] == 1

    def test_remote(self, target: str, capsys: pytest.CaptureFixture[str]) -> None:
        """The same file replayed against the live server passes and exits 0."""
        assert main(["replay", str(EXAMPLES), "--target", target]) == 0
        assert "13 通过 passed, 0 失败 failed" in capsys.readouterr().out

    def test_mismatch_exits_1(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """One wrong expectation exits 1 and names the case, its line and what differed."""
        lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
        case = json.loads(lines[1])
        case["expected"]["outputs"]["monthly_amount"] = 100
        lines[1] = json.dumps(case, ensure_ascii=False)
        path = write_cases(tmp_path / "wrong.jsonl", lines)
        assert main(["replay", str(path), "--rulesets", str(RULESETS)]) == 1
        out = capsys.readouterr().out
        assert f"ex-0001 ({path}:2, GF00012000)" in out
        assert "outputs.monthly_amount: expected 100, got 200" in out
        assert "12 通过 passed, 1 失败 failed" in out

    def test_bad_case_file_exits_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad line exits 2 and names file:line; nothing is replayed."""
        lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
        lines[4] = lines[4][:-1]  # truncated JSON
        path = write_cases(tmp_path / "bad.jsonl", lines)
        assert main(["replay", str(path), "--rulesets", str(RULESETS)]) == 2
        captured = capsys.readouterr()
        assert f"{path}:5: invalid JSON" in captured.err
        assert captured.out == ""

    @pytest.mark.parametrize(
        ("value", "problem"),
        [("9" * 5000, "a number with too many digits"), ("[" * 100_000, "nested too deeply")],
    )
    def test_json_python_will_not_build_is_a_bad_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, problem: str
    ) -> None:
        """A line with an integer of more than 4,300 digits, or nested past Python's recursion,
        was a ValueError / RecursionError traceback from `replay`, `rules test` and `decide
        --facts` (and such a saved decision from `verify-receipt` and `notice --from`); it is
        bad input (exit 2) like any other invalid JSON."""
        lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
        lines[4] = '{"case_id": "x", "item_code": "GF00012000", "facts": ' + value
        path = write_cases(tmp_path / "bad.jsonl", lines)
        assert main(["replay", str(path), "--rulesets", str(RULESETS)]) == 2
        assert f"{path}:5: invalid JSON: {problem}" in capsys.readouterr().err
        facts = tmp_path / "facts.json"
        facts.write_text(value, encoding="utf-8")
        assert main(["decide", "--item", "GF00012000", "--facts", str(facts)]) == 2
        assert f"facts {facts}: invalid JSON: {problem}" in capsys.readouterr().err
        # A saved decision, to check its receipt or print its notice: the same.
        assert main(["verify-receipt", str(facts), "--key", str(facts)]) == 2
        assert f"decision {facts}: invalid JSON: {problem}" in capsys.readouterr().err
        assert main(["notice", "--from", str(facts), "--html", str(tmp_path / "n.html")]) == 2
        assert f"cannot read decision {facts}: {problem}" in capsys.readouterr().err

    def test_today_needs_rulesets(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--today is for in-process replay only (the server keeps its own clock)."""
        assert main(["replay", str(EXAMPLES), "--today", "2026-01-01"]) == 2
        assert "--today needs --rulesets" in capsys.readouterr().err

    def test_in_process_matches_remote(self, client: Client, local: DecideFn) -> None:
        """In-process and remote replay decide every example identically."""
        cases = load_cases(EXAMPLES)
        seen: dict[str, list[tuple[str, dict[str, Any] | None]]] = {"local": [], "remote": []}

        def recording(name: str, fn: DecideFn) -> DecideFn:
            def decide(case: Any) -> tuple[str, dict[str, Any] | None]:
                result = fn(case)
                seen[name].append(result)
                return result

            return decide

        a = replay(cases, recording("local", local))
        b = replay(cases, recording("remote", remote(client)))
        assert [r.outcome for r in a.results] == [r.outcome for r in b.results]
        assert a.to_dict() == b.to_dict()
        for (_, x), (_, y) in zip(seen["local"], seen["remote"], strict=True):
            assert stable(x) == stable(y)

    def test_in_process_today(self, tmp_path: Path) -> None:
        """`today` stands in for a case without application.date."""
        facts = {"applicant": SENIOR_90["applicant"]}
        [case] = load_cases(
            write_cases(
                tmp_path / "c.jsonl",
                [
                    {
                        "item_code": "GF00012000",
                        "facts": facts,
                        "materials": SENIOR_MATERIALS,
                        "expected": {"outcome": "APPROVE"},
                    }
                ],
            )
        )
        outcome, d = in_process(RULESETS, today=dt.date(2026, 6, 15))(case)
        assert outcome == "APPROVE"
        assert d is not None and d["as_of_date"] == "2026-06-15"
