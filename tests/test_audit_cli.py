"""Receipts, audit verification and export from the client side: library and `miaopi` CLI.

A saved decision (`miaopi decide --json`) must verify offline with the public key and fail on
any change; the audit trail verifies through the server and offline from the database file;
an export of the trail replays against the rule files, as of the original days.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import io
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from miaopi_client import Client, ClientError, load_cases, render
from miaopi_client.audit import export_cases, records_from_db
from miaopi_client.cli import main
from miaopi_client.receipts import parse_decision, record_body, verify_receipt
from miaopi_server.audit.record import hash_body
from miaopi_server.audit.seal import key_id_of, public_key_from_pem
from miaopi_server.clock import shanghai_today
from tests.support import (
    DISABILITY,
    DISABILITY_MATERIALS,
    PUBLISHED_AT_START,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    resident_id,
    with_facts,
)

SENIOR_CODE, DISABILITY_CODE = "GF00012000", "GF00034001"


@pytest.fixture(autouse=True)
def _quiet_server_logs() -> Iterator[None]:
    """The in-process server logs through unconfigured structlog, i.e. to stdout, which
    would mix with the CLI output under test."""
    with capture_logs():
        yield


def run(*argv: str) -> tuple[int, str, str]:
    """`miaopi argv...` -> (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with capture_logs(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def client(live_server: Any) -> Iterator[Client]:
    with Client(live_server.target) as c:
        yield c


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit-cli")


@pytest.fixture(scope="module")
def saved(live_server: Any, workdir: Path) -> dict[str, Any]:
    """`miaopi decide --json` of an approved senior case, as a window would save it."""
    facts = write_json(workdir / "facts.json", SENIOR)
    code, out, err = run(
        "--target",
        live_server.target,
        "decide",
        "--item",
        SENIOR_CODE,
        "--facts",
        str(facts),
        "--materials",
        ",".join(SENIOR_MATERIALS),
        "--window-id",
        "w-save",
        "--operator-id",
        "op-save",
        "--json",
    )
    assert code == 0, err
    d = json.loads(out)
    assert d["outcome"] == "APPROVE" and d["outputs"]["monthly_amount"] == 30
    return d


@pytest.fixture(scope="module")
def pem(live_server: Any, workdir: Path) -> Path:
    """The server's public sealing key, written by `miaopi audit key --out`."""
    path = workdir / "seal.pub.pem"
    code, _, err = run("audit", "key", "--target", live_server.target, "--out", str(path))
    assert code == 0, err
    assert key_id_of(public_key_from_pem(path.read_text())) in err
    return path


def other_key(workdir: Path) -> tuple[Ed25519PrivateKey, Path]:
    key = Ed25519PrivateKey.generate()
    path = workdir / f"other-{uuid.uuid4().hex[:8]}.pub.pem"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, path


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --- verify-receipt -------------------------------------------------------------------------


class TestVerifyReceipt:
    def test_saved_decision_verifies_via_target(
        self, live_server: Any, saved: dict[str, Any], tmp_path: Path
    ) -> None:
        """A fresh decision saved from `decide --json` verifies with the server's key."""
        f = write_json(tmp_path / "d.json", saved)
        code, out, _ = run("verify-receipt", str(f), "--target", live_server.target)
        seq, key_id = int(saved["receipt"]["seq"]), saved["receipt"]["key_id"]
        assert code == 0
        assert out.strip() == f"receipt OK: seq {seq} sealed by {key_id}"

    def test_saved_decision_verifies_offline(
        self, saved: dict[str, Any], pem: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """...and offline with the PEM from `audit key --out`; "-" reads stdin."""
        f = write_json(tmp_path / "d.json", saved)
        assert run("verify-receipt", str(f), "--key", str(pem))[0] == 0
        monkeypatch.setattr("sys.stdin", io.StringIO(f.read_text(encoding="utf-8")))
        assert run("verify-receipt", "-", "--key", str(pem))[0] == 0

    def test_wrapper_and_raw_forms_verify(self, saved: dict[str, Any], pem: Path) -> None:
        """{"decision": ...} (GetDecision) and the raw MessageToDict form (OUTCOME_ prefixes)
        are accepted too; the input is not modified."""
        public = public_key_from_pem(pem.read_text())
        before = copy.deepcopy(saved)
        assert verify_receipt({"decision": saved}, public).ok
        prefixed = copy.deepcopy(saved)
        prefixed["outcome"] = "OUTCOME_" + prefixed["outcome"]
        for r in prefixed["reasons"]:
            r["outcome"] = "OUTCOME_" + r["outcome"]
        assert verify_receipt(prefixed, public).ok
        assert saved == before

    @pytest.mark.parametrize(
        "name, change",
        [
            ("integral float as int", lambda d: d["outputs"].update(monthly_amount=30)),
            ("int64 seq as a number", lambda d: d["receipt"].update(seq=int(d["receipt"]["seq"]))),
            ("outcome as enum number", lambda d: d.update(outcome=1)),
            ("default value spelled out", lambda d: d.update(review_due_date="")),
            ("key order", lambda d: d.update(dict(reversed(list(d.items()))))),
        ],
    )
    def test_representation_changes_still_verify(
        self, saved: dict[str, Any], pem: Path, name: str, change: Callable[[dict[str, Any]], Any]
    ) -> None:
        """Writing the same value differently is not a change of the decision."""
        d = copy.deepcopy(saved)
        change(d)
        assert verify_receipt(d, public_key_from_pem(pem.read_text())).ok, name

    @pytest.mark.parametrize(
        "edit",
        [
            "outcome",
            "reason_message",
            "monthly_amount",
            "as_of_date",
            "fact_value",
            "receipt_seq",
            "reason_outcome",
            "decided_at",
            "derived_fact",
            "operator_id",
            "extra_field",
            "drop_reason",
            "record_hash",
        ],
    )
    def test_any_change_fails(
        self, saved: dict[str, Any], pem: Path, tmp_path: Path, live_server: Any, edit: str
    ) -> None:
        """Changing any one field of the saved decision makes verify-receipt exit 1."""
        d = copy.deepcopy(saved)
        reason = d["reasons"][0]
        if edit == "outcome":
            d["outcome"] = "REJECT"
        elif edit == "reason_message":
            reason["message"] += "。"
        elif edit == "monthly_amount":
            d["outputs"]["monthly_amount"] = 300.0
        elif edit == "as_of_date":
            d["as_of_date"] = "2026-11-21"
        elif edit == "fact_value":
            fact = next(f for r in d["reasons"] for f in r.get("facts_read", []) if "value" in f)
            v = fact["value"]
            fact["value"] = v + 1 if isinstance(v, int | float) else f"{v}0"
        elif edit == "receipt_seq":
            d["receipt"]["seq"] = str(int(d["receipt"]["seq"]) + 1)
        elif edit == "reason_outcome":
            reason["outcome"] = "MANUAL_REVIEW"
        elif edit == "decided_at":
            d["decided_at"] = "2026-01-01T00:00:00Z"
        elif edit == "derived_fact":
            name, v = next(iter(d["derived_facts"].items()))  # e.g. "applicant.age": 76.0
            d["derived_facts"][name] = v + 1 if isinstance(v, int | float) else f"{v}0"
        elif edit == "operator_id":
            d["receipt"]["window"]["operator_id"] = "op-other"
        elif edit == "extra_field":
            d["approved_by"] = "someone"
        elif edit == "drop_reason":
            d["reasons"] = d["reasons"][1:]
        elif edit == "record_hash":
            d["receipt"]["record_hash"] = "0" * 64
        f = write_json(tmp_path / "edited.json", d)
        code, out, _ = run("verify-receipt", str(f), "--key", str(pem))
        assert code == 1, out
        assert out.startswith("receipt FAILED")
        assert run("verify-receipt", str(f), "--target", live_server.target)[0] == 1

    def test_duplicate_key_fails(self, saved: dict[str, Any], pem: Path, tmp_path: Path) -> None:
        """A second "outcome" key (JSON readers differ on which one wins) is refused."""
        text = json.dumps(saved, ensure_ascii=False)
        f = tmp_path / "dup.json"
        f.write_text(
            text.replace('"outcome": "APPROVE"', '"outcome": "REJECT", "outcome": "APPROVE"', 1),
            encoding="utf-8",
        )
        code, out, _ = run("verify-receipt", str(f), "--key", str(pem))
        assert code == 1 and "duplicate key 'outcome'" in out

    def test_change_names_the_decision(self, saved: dict[str, Any], pem: Path) -> None:
        d = copy.deepcopy(saved)
        d["outcome"] = "REJECT"
        check = verify_receipt(d, public_key_from_pem(pem.read_text()))
        assert (check.ok, check.reason) == (False, "record hash mismatch: the decision was changed")
        assert check.seq == int(saved["receipt"]["seq"])

    def test_sealed_by_another_key(
        self, saved: dict[str, Any], pem: Path, workdir: Path, tmp_path: Path, live_server: Any
    ) -> None:
        """A decision (even a changed one) re-sealed with another key fails: by key id when
        it names its own key, by signature when it claims the server's."""
        key, other_pem = other_key(workdir)
        d = copy.deepcopy(saved)
        d["outputs"]["monthly_amount"] = 300
        msg = parse_decision(d)
        h = hash_body(record_body(msg))
        forged = copy.deepcopy(d)
        # Forged in the form of a receipt made before the tree: a signature of its own.
        forged["receipt"].pop("inclusion_proof", None)  # absent when the tree had one leaf
        del forged["receipt"]["tree_head"]
        forged["receipt"].update(
            record_hash=h,
            key_id=key_id_of(raw(key)),
            signature=__import__("base64").b64encode(key.sign(bytes.fromhex(h))).decode(),
        )
        f = write_json(tmp_path / "forged.json", forged)
        assert run("verify-receipt", str(f), "--key", str(other_pem))[0] == 0  # self-consistent
        code, out, _ = run("verify-receipt", str(f), "--target", live_server.target)
        assert code == 1 and "sealed with another key" in out
        assert run("verify-receipt", str(f), "--key", str(pem))[0] == 1

        forged["receipt"]["key_id"] = saved["receipt"]["key_id"]  # claims the server's key
        f = write_json(tmp_path / "forged2.json", forged)
        code, out, _ = run("verify-receipt", str(f), "--key", str(pem))
        assert code == 1 and "bad signature" in out

        genuine = write_json(tmp_path / "genuine.json", saved)
        code, out, _ = run("verify-receipt", str(genuine), "--key", str(other_pem))
        assert code == 1 and "sealed with another key" in out

    def test_rotated_keys(
        self, saved: dict[str, Any], pem: Path, workdir: Path, tmp_path: Path
    ) -> None:
        """With several --key, the one the receipt names is used."""
        _, other_pem = other_key(workdir)
        f = write_json(tmp_path / "d.json", saved)
        assert run("verify-receipt", str(f), "--key", str(other_pem), "--key", str(pem))[0] == 0

    def test_no_receipt(self, saved: dict[str, Any], pem: Path, tmp_path: Path) -> None:
        d = {k: v for k, v in saved.items() if k != "receipt"}
        code, out, _ = run(
            "verify-receipt", str(write_json(tmp_path / "d.json", d)), "--key", str(pem)
        )
        assert code == 1 and "no receipt" in out

    @pytest.mark.parametrize("content", [None, "{not json", "[1, 2]"])
    def test_unreadable_input_exits_2(self, pem: Path, tmp_path: Path, content: str | None) -> None:
        f = tmp_path / "d.json"
        if content is not None:
            f.write_text(content, encoding="utf-8")
        code, out, err = run("verify-receipt", str(f), "--key", str(pem))
        assert code == 2 and out == "" and err.startswith("miaopi: ")

    def test_bad_key_file_exits_2(self, saved: dict[str, Any], tmp_path: Path) -> None:
        f = write_json(tmp_path / "d.json", saved)
        bad = tmp_path / "bad.pem"
        bad.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
        code, _, err = run("verify-receipt", str(f), "--key", str(bad))
        assert code == 2 and "not an Ed25519 public key" in err

    def test_recorded_decisions_verify(
        self, client: Client, saved: dict[str, Any], pem: Path
    ) -> None:
        """Decisions served from the record (GetDecision, ListDecisions) verify as well: the
        stored body (30) and the live answer (30.0) hash alike."""
        public = public_key_from_pem(pem.read_text())
        got = client.get_decision(saved["decision_id"])
        assert got["decision"] == saved and "case" not in got
        assert verify_receipt(got, public).ok
        for d in client.iter_decisions(page_size=7):
            check = verify_receipt(d, public)
            assert check.ok, (d["decision_id"], check.reason)

    def test_every_example_verifies(self, client: Client, pem: Path) -> None:
        """Every example case beside the rule files (all items, every outcome, fractional
        numbers, missing facts, with and without a window): the saved JSON and the recorded
        form (GetDecision) both verify."""
        public = public_key_from_pem(pem.read_text())
        outcomes: set[str] = set()
        for n, case in enumerate(
            c for f in sorted(RULESETS.glob("*.cases.jsonl")) for c in load_cases(f)
        ):
            try:
                d = client.decide(
                    case.item_code, case.facts, case.materials, window_id="w-ex" if n % 2 else ""
                )
            except ClientError:
                continue  # examples of invalid cases: nothing recorded
            outcomes.add(d["outcome"])
            saved = json.loads(json.dumps(d, ensure_ascii=False, indent=2))
            for form in (saved, client.get_decision(d["decision_id"])):
                check = verify_receipt(form, public)
                assert check.ok, (case.case_id, check.reason)
        assert outcomes == {"APPROVE", "REJECT", "MANUAL_REVIEW"}

    def test_decide_shows_receipt(self, live_server: Any, tmp_path: Path) -> None:
        """The readable `decide` output names the receipt: seq, short hash, key id."""
        facts = write_json(tmp_path / "facts.json", SENIOR)
        code, out, _ = run(
            "--target",
            live_server.target,
            "decide",
            "--item",
            SENIOR_CODE,
            "--facts",
            str(facts),
            "--materials",
            ",".join(SENIOR_MATERIALS),
        )
        line = next(x for x in out.splitlines() if x.startswith("存证 Receipt:"))
        assert code == 0
        assert line.split()[2].startswith("#") and "sealed ed25519:" in line
        assert render.receipt_line({"seq": "7", "record_hash": "ab" * 32}) == "#7 " + "ab" * 8


# --- audit verify / key / export ------------------------------------------------------------


class TestAuditVerify:
    def test_via_server(self, live_server: Any, saved: dict[str, Any]) -> None:
        code, out, _ = run("audit", "verify", "--target", live_server.target)
        assert code == 0
        assert out.startswith("audit trail OK: ") and out.strip().endswith(" records")

    def test_offline(self, live_server: Any, saved: dict[str, Any], pem: Path) -> None:
        db = str(live_server.running.store.path)
        code, out, _ = run("audit", "verify", "--db", db, "--key", str(pem), "--json")
        v = json.loads(out)
        assert code == 0 and v["ok"] is True and v["checked"] >= int(saved["receipt"]["seq"])
        seq = saved["receipt"]["seq"]
        code, out, _ = run(
            "audit", "verify", "--db", db, "--key", str(pem), "--from", seq, "--to", seq
        )
        assert (code, out.strip()) == (0, "audit trail OK: 1 records")

    def test_offline_needs_a_key(self, live_server: Any) -> None:
        code, out, err = run("audit", "verify", "--db", str(live_server.running.store.path))
        assert code == 2 and out == "" and "public key is needed" in err

    def test_offline_with_another_key(
        self, live_server: Any, saved: dict[str, Any], workdir: Path
    ) -> None:
        _, other_pem = other_key(workdir)
        code, out, _ = run(
            "audit", "verify", "--db", str(live_server.running.store.path), "--key", str(other_pem)
        )
        assert code == 1 and out.startswith("audit trail BROKEN at seq 1: unknown sealing key")

    def test_tampered_copy_is_broken(
        self, live_server: Any, saved: dict[str, Any], pem: Path, tmp_path: Path
    ) -> None:
        """Offline verification of a copy finds a changed record."""
        copy_path = tmp_path / "copy.sqlite3"
        src = sqlite3.connect(live_server.running.store.path)
        dst = sqlite3.connect(copy_path)
        with dst:
            src.backup(dst)
        src.close()
        seq = int(saved["receipt"]["seq"])
        with dst:
            dst.execute(
                "UPDATE records SET body = replace(body, '\"monthly_amount\":30',"
                " '\"monthly_amount\":300') WHERE seq = ?",
                (seq,),
            )
        dst.close()
        # A copy has no witness beside it: verify says so unless told to check it alone.
        code, _, err = run("audit", "verify", "--db", str(copy_path), "--key", str(pem))
        assert code == 2 and "no witness beside" in err and "--no-witness" in err
        code, out, _ = run(
            "audit", "verify", "--db", str(copy_path), "--key", str(pem), "--no-witness"
        )
        assert code == 1 and out.startswith(f"audit trail BROKEN at seq {seq}: hash mismatch")

    def test_missing_db_exits_2(self, pem: Path, tmp_path: Path) -> None:
        code, _, err = run(
            "audit", "verify", "--db", str(tmp_path / "nope.sqlite3"), "--key", str(pem)
        )
        assert code == 2 and "nope.sqlite3" in err

    def test_key_to_stdout(self, live_server: Any, pem: Path) -> None:
        code, out, _ = run("audit", "key", "--target", live_server.target)
        assert code == 0 and out == pem.read_text()


def birth_for_age_on(day: dt.date, age: int) -> str:
    try:
        return day.replace(year=day.year - age).isoformat()
    except ValueError:  # 29 February
        return (day - dt.timedelta(days=1)).replace(year=day.year - age).isoformat()


@pytest.fixture(scope="module")
def undated(client: Client) -> dict[str, Any]:
    """A case without application.date, decided today for someone turning 90 in ten
    days: 100 yuan today, 200 if it were decided as of a day after the birthday."""
    today = shanghai_today(dt.datetime.now(dt.UTC))
    facts = with_facts(SENIOR, application__date=None)
    facts["applicant"]["id_number"] = resident_id(
        birth_for_age_on(today + dt.timedelta(days=10), 90)
    )
    d = client.decide(SENIOR_CODE, facts, SENIOR_MATERIALS, window_id="w-undated")
    assert d["outputs"]["monthly_amount"] == 100 and d["as_of_date"] == today.isoformat()
    return d


class TestExport:
    def test_export_db_replays(
        self, live_server: Any, saved: dict[str, Any], undated: dict[str, Any], tmp_path: Path
    ) -> None:
        """`audit export --db` writes a case file that replays clean against the rule files,
        today and on any later day: undated cases carry their original as-of date."""
        out = tmp_path / "f.jsonl"
        code, _, err = run(
            "audit", "export", "--db", str(live_server.running.store.path), "--out", str(out)
        )
        assert code == 0 and err.startswith("exported ")
        cases = {c.case_id: c for c in load_cases(out)}
        assert f"exported {len(cases)} case(s)" in err
        assert {saved["decision_id"], undated["decision_id"]} <= set(cases)
        u = cases[undated["decision_id"]]
        assert u.facts["application"]["date"] == undated["as_of_date"]
        assert u.expected == {
            "outcome": "APPROVE",
            "missing_materials": [],
            "outputs": {"monthly_amount": 100},
        }
        line = next(
            json.loads(x)
            for x in out.read_text(encoding="utf-8").splitlines()
            if undated["decision_id"] in x
        )
        assert line["note"].startswith(f"seq {int(undated['receipt']['seq'])}, decided ")
        assert "\\u" not in out.read_text(encoding="utf-8")

        code, report, _ = run("replay", str(out), "--rulesets", str(RULESETS))
        assert code == 0, report
        later = (dt.date.fromisoformat(undated["as_of_date"]) + dt.timedelta(days=60)).isoformat()
        code, report, _ = run("replay", str(out), "--rulesets", str(RULESETS), "--today", later)
        assert code == 0, report

    def test_export_from_server_matches_db(
        self, live_server: Any, undated: dict[str, Any], tmp_path: Path
    ) -> None:
        """The same records exported from the server (ListDecisions with cases) and from the
        database file give the same lines, oldest first; --item filters."""
        via_server = tmp_path / "server.jsonl"
        code, _, _ = run(
            "audit",
            "export",
            "--target",
            live_server.target,
            "--item",
            SENIOR_CODE,
            "--out",
            str(via_server),
        )
        assert code == 0
        via_db = [
            json.dumps(c, ensure_ascii=False) + "\n"
            for c in export_cases(records_from_db(live_server.running.store.path, SENIOR_CODE))
        ]
        text = via_server.read_text(encoding="utf-8")
        assert text == "".join(via_db)
        seqs = [int(json.loads(x)["note"].split(",")[0].split()[1]) for x in text.splitlines()]
        assert seqs == sorted(seqs) and len(seqs) >= 2
        assert all(json.loads(x)["item_code"] == SENIOR_CODE for x in text.splitlines())

    def test_export_to_stdout(self, live_server: Any, saved: dict[str, Any]) -> None:
        code, out, err = run(
            "audit", "export", "--db", str(live_server.running.store.path), "--item", "NO_SUCH_ITEM"
        )
        assert (code, out, err.strip()) == (0, "", "exported 0 case(s)")

    def test_export_not_an_audit_db(self, tmp_path: Path) -> None:
        bogus = tmp_path / "x.sqlite3"
        sqlite3.connect(bogus).close()
        code, _, err = run("audit", "export", "--db", str(bogus))
        assert code == 2 and "not a readable audit trail" in err


# --- listing --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch(client: Client) -> tuple[str, list[dict[str, Any]]]:
    """Five decisions from one fresh window: 3 senior (2 approve, 1 reject), 2 disability."""
    window = f"w-list-{uuid.uuid4().hex[:8]}"
    plan = [
        (SENIOR_CODE, SENIOR, SENIOR_MATERIALS),
        (DISABILITY_CODE, DISABILITY, DISABILITY_MATERIALS),
        (SENIOR_CODE, SENIOR, ["id_card"]),
        (SENIOR_CODE, SENIOR, SENIOR_MATERIALS),
        (DISABILITY_CODE, DISABILITY, DISABILITY_MATERIALS),
    ]
    return window, [
        client.decide(code, facts, mats, window_id=window, operator_id="op")
        for code, facts, mats in plan
    ]


class TestListDecisions:
    @staticmethod
    def ids(ds: list[dict[str, Any]]) -> list[str]:
        return [d["decision_id"] for d in ds]

    def test_filters(self, client: Client, batch: tuple[str, list[dict[str, Any]]]) -> None:
        window, made = batch
        newest_first = list(reversed(made))
        page = client.list_decisions(window_id=window)
        assert self.ids(page["decisions"]) == self.ids(newest_first)
        assert page["next_page_token"] == "" and page["cases"] == []
        senior = client.list_decisions(window_id=window, item_code=SENIOR_CODE)["decisions"]
        assert self.ids(senior) == self.ids(
            [d for d in newest_first if d["item_code"] == SENIOR_CODE]
        )
        rejected = client.list_decisions(window_id=window, outcome="REJECT")["decisions"]
        assert [d["outcome"] for d in made].count("REJECT") == 1
        assert self.ids(rejected) == self.ids([d for d in made if d["outcome"] == "REJECT"])
        assert (
            client.list_decisions(window_id=window, outcome="OUTCOME_REJECT")["decisions"]
            == rejected
        )
        assert client.list_decisions(window_id="w-nobody")["decisions"] == []
        future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        assert client.list_decisions(window_id=window, decided_from=future)["decisions"] == []
        assert self.ids(
            client.list_decisions(window_id=window, decided_to=future)["decisions"]
        ) == self.ids(newest_first)

    def test_cases_parallel_to_decisions(
        self, client: Client, batch: tuple[str, list[dict[str, Any]]]
    ) -> None:
        window, made = batch
        page = client.list_decisions(window_id=window, include_cases=True)
        assert [c["item_code"] for c in page["cases"]] == [
            d["item_code"] for d in page["decisions"]
        ]
        got = client.get_decision(made[2]["decision_id"], include_case=True)
        assert got["case"]["materials"] == ["id_card"]
        assert got["decision"]["missing_materials"]

    def test_paging_each_once_newest_first(
        self, client: Client, batch: tuple[str, list[dict[str, Any]]]
    ) -> None:
        window, made = batch
        first = client.list_decisions(window_id=window, page_size=2)
        assert len(first["decisions"]) == 2 and first["next_page_token"]
        got = list(client.iter_decisions(window_id=window, page_size=2))
        assert self.ids(got) == self.ids(list(reversed(made)))
        everything = list(client.iter_decisions(page_size=3))
        assert len(set(self.ids(everything))) == len(everything)
        seqs = [int(d["receipt"]["seq"]) for d in everything]
        assert seqs == sorted(seqs, reverse=True)
        # every decision record, none skipped (before them: the start's publication event)
        assert seqs == list(range(seqs[0], PUBLISHED_AT_START, -1))

    def test_bad_filters(self, client: Client) -> None:
        with pytest.raises(ClientError) as info:
            client.list_decisions(outcome="MAYBE")
        assert info.value.code == "INVALID_ARGUMENT"
        with pytest.raises(ClientError):
            client.list_decisions(decided_from="yesterday")
        with pytest.raises(ClientError) as info:
            client.list_decisions(page_token="!!not-a-token")
        assert info.value.code == "INVALID_ARGUMENT"
        with pytest.raises(ClientError) as info:
            client.get_decision("no-such-decision")
        assert info.value.code == "NOT_FOUND"

    def test_verify_audit_trail_and_seal_key(self, client: Client, pem: Path) -> None:
        v = client.verify_audit_trail()
        assert v["ok"] is True and v["checked"] >= 5
        assert (v["first_bad_seq"], v["reason"]) == (0, "")
        key = client.seal_key()
        assert key["public_key"] == public_key_from_pem(pem.read_text())
        assert key["key_id"] == key_id_of(key["public_key"])
