"""DryRunDecide: decides like Decide, records no decision or receipt, opens no case, looks
nothing up, and is itself on the record as a "dry_run" event without the facts. The CLI's
`decide --dry-run` and `replay --dry-run` use it (a plain remote replay records real
decisions)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_client.cli import main
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.support import (
    EXAMPLES,
    REGISTRY,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    SOURCED_AS_OF,
    TOKENS,
    credentials,
    decide_request,
    registry_senior,
    resident_id,
    with_facts,
)

SUP = [("authorization", f"Bearer {TOKENS['sup']}")]
WINDOW = [("authorization", f"Bearer {TOKENS['w1']}")]
# Age 105 and over with the senior materials: MANUAL_REVIEW (a real decision opens a task).
REVIEW_CASE = with_facts(SENIOR, applicant__id_number=resident_id("1915-01-01"))


def _rows(db: Path, sql: str) -> list[Any]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


def _counts(db: Path) -> tuple[int, int]:
    """(decision records, casework tasks)."""
    decisions = _rows(db, "SELECT COUNT(*) FROM records WHERE kind = 'decision'")[0][0]
    tasks = _rows(db, "SELECT COUNT(*) FROM tasks")[0][0]
    return decisions, tasks


def _dry_events(db: Path) -> list[dict[str, Any]]:
    rows = _rows(db, "SELECT body FROM records WHERE kind = 'event' ORDER BY seq")
    return [e for e in (json.loads(r[0])["event"] for r in rows) if e["type"] == "dry_run"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    state = tmp_path_factory.mktemp("dry-run")
    creds = credentials(state / "credentials.yaml")
    live = LiveServer(
        Settings(listen="127.0.0.1:0", rulesets=RULESETS, state_dir=state, credentials=creds,
                 rate_per_second=0),
        auth=True,
    )  # fmt: skip
    live.db = state / "audit.sqlite3"  # type: ignore[attr-defined]
    yield live
    live.stop()


def test_dry_run_records_nothing_but_the_dry_run(server: Any) -> None:
    with grpc.insecure_channel(server.target) as ch:
        stub = pb_grpc.ApprovalServiceStub(ch)
        case = decide_request("GF00012000", REVIEW_CASE, SENIOR_MATERIALS)
        before = _counts(server.db)
        resp = stub.DryRunDecide(pb.DryRunDecideRequest(case=case), metadata=SUP)
        dry = resp.decision
        assert dry.dry_run and dry.decision_id == "" and not dry.HasField("receipt")
        assert _counts(server.db) == before  # no decision record, no case opened
        real = stub.Decide(case, metadata=WINDOW).decision
        assert not real.dry_run and real.decision_id and real.HasField("receipt")
        assert _counts(server.db) == (before[0] + 1, before[1] + 1)  # the real one opens a task
        assert dry.outcome == real.outcome == pb.OUTCOME_MANUAL_REVIEW
        assert [r.rule_id for r in dry.reasons] == [r.rule_id for r in real.reasons]
        assert dry.ruleset == real.ruleset
    events = _dry_events(server.db)
    assert events[-1] | {"id": "", "at": ""} == {
        "type": "dry_run",
        "id": "",
        "at": "",
        "by": "sup",
        "role": "supervisor",
        "item_code": "GF00012000",
        "ruleset_version": real.ruleset.version,
        "ruleset_digest": real.ruleset.digest,
        "outcome": "MANUAL_REVIEW",
        "case_digest": real.receipt.case_digest,  # the same case, by digest only
    }
    seq_row = _rows(server.db, f"SELECT body FROM records WHERE seq = {resp.event_seq}")
    body = seq_row[0][0]
    assert json.loads(body)["event"]["type"] == "dry_run"
    assert SENIOR["applicant"]["id_number"] not in body  # no personal data on the event
    with grpc.insecure_channel(server.target) as ch:
        assert (
            pb_grpc.ApprovalServiceStub(ch)
            .VerifyAuditTrail(pb.VerifyAuditTrailRequest(), metadata=SUP)
            .ok
        )


def test_dry_run_decides_on_recorded_lookups(server: Any) -> None:
    """`sourced` is decided on as sent (nothing looked up); the answer carries it."""
    lookup = {
        "source": "population",
        "key_path": "applicant.id_number",
        "status": "unavailable",
        "reason": "timeout",
        "fetched_at": "2026-01-01T00:00:00Z",
    }
    sourced = {"consent": "C-1", "lookups": [lookup]}
    req = pb.DryRunDecideRequest(case=decide_request("GF00012000", SENIOR, SENIOR_MATERIALS))
    json_format.ParseDict(sourced, req.sourced)
    with grpc.insecure_channel(server.target) as ch:
        d = pb_grpc.ApprovalServiceStub(ch).DryRunDecide(req, metadata=SUP).decision
    assert d.dry_run and d.sourced.consent == "C-1"
    assert [lk.status for lk in d.sourced.lookups] == ["unavailable"]


def test_bad_dry_run_names_every_field(server: Any) -> None:
    facts = with_facts(SENIOR, applicant__id_number="not-an-id")
    case = decide_request("GF00012000", facts, SENIOR_MATERIALS)
    case.window.window_id = "W\x00"
    with grpc.insecure_channel(server.target) as ch:
        stub = pb_grpc.ApprovalServiceStub(ch)
        with pytest.raises(grpc.RpcError) as bad:
            stub.DryRunDecide(pb.DryRunDecideRequest(case=case), metadata=SUP)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = bad.value.details() or ""
        with pytest.raises(grpc.RpcError) as unknown:
            case = decide_request("XX99999000", SENIOR, [])
            stub.DryRunDecide(pb.DryRunDecideRequest(case=case), metadata=SUP)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert {"case.window.window_id", "case.facts.applicant.id_number"} <= _fields(bad.value), (
        details
    )


def _fields(error: Any) -> set[str]:
    """The fields a BadRequest detail of an RPC error names."""
    status = rpc_status.from_call(error)
    assert status is not None
    fields = set()
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            fields |= {v.field for v in br.field_violations}
    return fields


def test_cli_dry_runs(server: Any, tmp_path: Path, capsys: Any) -> None:
    """`replay --dry-run` regresses a case file against the live server without recording a
    decision; `decide --dry-run` shows one case. Connection options after the command."""
    before = _counts(server.db)
    dry_before = len(_dry_events(server.db))
    conn = ["--target", server.target, "--token", TOKENS["sup"]]
    assert main(["replay", str(EXAMPLES), "--dry-run", "--json", *conn]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] == 0 and report["total"] > 5
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(SENIOR, ensure_ascii=False), encoding="utf-8")
    argv = ["decide", "--item", "GF00012000", "--facts", str(facts), "--dry-run", "--json"]
    assert main([*argv, "--materials", ",".join(SENIOR_MATERIALS), *conn]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["dry_run"] is True and "decision_id" not in shown
    assert _counts(server.db) == before
    decided = sum(
        n for o, n in report["outcomes"].items() if o not in ("INVALID_ARGUMENT", "NOT_FOUND")
    )
    assert decided < report["total"]  # the file also has refused cases: they record nothing
    assert len(_dry_events(server.db)) == dry_before + decided + 1
    # A window may not dry-run (and its token is refused, not silently used for real).
    window = ["--target", server.target, "--token", TOKENS["w1"]]
    assert main(["replay", str(EXAMPLES), "--dry-run", *window]) == 1
    assert "PERMISSION_DENIED" in capsys.readouterr().err
    assert main(["replay", str(EXAMPLES), "--dry-run", "--rulesets", str(RULESETS)]) == 2


def test_dry_run_looks_nothing_up(tmp_path: Path) -> None:
    """With shared data configured and the applicant's consent, Decide looks the person up;
    a dry run of the same case does not (consent ignored), and given the real decision's
    recorded lookups it decides as the real one did, on them."""
    live = LiveServer(
        Settings(listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path, registry=REGISTRY)
    )
    try:
        person = registry_senior()
        facts = {"applicant": {"name": "张三", "id_number": person["key"]},
                 "application": {"date": SOURCED_AS_OF}}  # fmt: skip
        case = decide_request("GF00012000", facts, ["id_card", "bank_account"])
        case.consent.reference = "授权-2026-1"
        with grpc.insecure_channel(live.target) as ch:
            stub = pb_grpc.ApprovalServiceStub(ch)
            real = stub.Decide(case).decision
            assert [lk.status for lk in real.sourced.lookups] and real.e_licenses
            # Without lookups the hukou region the population source gave is simply missing.
            with pytest.raises(grpc.RpcError) as blind:
                stub.DryRunDecide(pb.DryRunDecideRequest(case=case))
            assert blind.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "case.facts.applicant.hukou_region" in _fields(blind.value)
            replayed = stub.DryRunDecide(
                pb.DryRunDecideRequest(case=case, sourced=real.sourced)
            ).decision
        assert replayed.dry_run and replayed.sourced == real.sourced
        assert (replayed.outcome, list(replayed.reasons)) == (real.outcome, list(real.reasons))
        assert list(replayed.e_licenses) == list(real.e_licenses)
    finally:
        live.stop()
