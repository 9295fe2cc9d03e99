"""Retention: the cases (personal data) of old decisions are erased on request, the purge is
itself on the record, and the trail still verifies, reporting those records as purged."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import json
import sqlite3
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format, timestamp_pb2
from structlog.testing import capture_logs

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi.v1 import review_pb2 as rpb
from miaopi.v1 import review_pb2_grpc as rpb_grpc
from miaopi_client.cli import main as cli
from miaopi_client.receipts import verify_receipt
from miaopi_server.audit import seal
from miaopi_server.audit.record import case_canonical, case_digest
from miaopi_server.audit.sqlite import SQLiteAuditStore, verify_database
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.support import PUBLISHED_AT_START, RULESETS, SENIOR, SENIOR_MATERIALS, pending

MARKER = "张三丰-110101199001011234"


def store_at(path: Path) -> SQLiteAuditStore:
    sealer, _ = seal.load_or_create(path / "key.pem")
    return SQLiteAuditStore(path / "audit.sqlite3", sealer, node_id="n-1")


def personal(i: int):  # type: ignore[no-untyped-def]
    """pending(i) (decided 2026-11-23T00:00:ii) whose case names a person."""
    facts = {"n": i, "name": f"{MARKER}#{i}#"}
    return dataclasses.replace(
        pending(i),
        case={"item_code": "T1", "facts": facts, "materials": []},
        case_json=case_canonical("T1", facts, []),
        case_digest=case_digest("T1", facts, []),
    )


def keys(store: SQLiteAuditStore) -> dict[str, bytes]:
    return {store.sealer.key_id: store.sealer.public_raw}


class TestPurgeInTheStore:
    def test_purged_records_verify_as_purged(self, tmp_path):
        """Cases of decisions before the limit are erased (from the file too), the purge is
        an event record after them, the records still read back (case_purged) and verify."""
        store = store_at(tmp_path)
        try:
            for i in range(1, 9):
                store.append(personal(i)).result(timeout=10)
            event = store.purge("2026-11-23T00:00:05.000000Z", "admin-1")
            assert event.seq == 9
            details = json.loads(event.body_json)["event"]
            assert details | {"id": "", "at": ""} == {
                "type": "purge", "before": "2026-11-23T00:00:05.000000Z", "by": "admin-1",
                "through_seq": 8, "purged": 4, "comments_purged": 0, "id": "", "at": "",
            }  # fmt: skip
            old, kept = store.get("d2"), store.get("d6")
            assert old is not None and old.case_purged and old.case == {}
            assert kept is not None and not kept.case_purged and kept.case["facts"]["n"] == 6
            v = store.verify()
            assert (v.ok, v.checked, v.purged) == (True, 9, 4), v
            store.append(personal(10)).result(timeout=10)  # the chain goes on after it
            assert store.verify().ok
        finally:
            store.close()
        content = b"".join(p.read_bytes() for p in tmp_path.glob("audit.sqlite3*"))
        for i in range(1, 5):
            assert f"{MARKER}#{i}#".encode() not in content  # overwritten, not just unlinked
        assert f"{MARKER}#6#".encode() in content

    @pytest.mark.parametrize(
        "sql",
        [
            "DELETE FROM cases WHERE seq = 6",  # decided after the limit
            "DELETE FROM cases WHERE seq = 10",  # recorded after the purge
            "UPDATE records SET body = replace(body, '\"through_seq\":8', '\"through_seq\":10')"
            " WHERE seq = 9",  # the purge event itself widened
        ],
    )
    def test_a_case_removed_without_a_purge_is_broken(self, tmp_path, sql):
        store = store_at(tmp_path)
        try:
            for i in range(1, 9):
                store.append(personal(i)).result(timeout=10)
            store.purge("2026-11-23T00:00:05.000000Z", "admin-1")
            store.append(personal(10)).result(timeout=10)
        finally:
            store.close()
        with contextlib.closing(sqlite3.connect(tmp_path / "audit.sqlite3")) as conn, conn:
            conn.execute(sql)
        v = verify_database(tmp_path / "audit.sqlite3", keys(store))
        assert not v.ok, v
        assert v.reason in ("case missing, and no purge covers it", "hash mismatch"), v


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with capture_logs(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(list(argv))
    return code, out.getvalue(), err.getvalue()


class TestPurgeOnAServer:
    def test_purge_get_list_verify_and_receipts(self, tmp_path):
        server = LiveServer(Settings(listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path))
        req = pb.DecideRequest(item_code="GF00012000", materials=SENIOR_MATERIALS)
        json_format.ParseDict(SENIOR, req.facts)
        try:
            with grpc.insecure_channel(server.target) as ch:
                stub = pb_grpc.ApprovalServiceStub(ch)
                old = [stub.Decide(req).decision for _ in range(3)]
                old.append(
                    stub.Decide(
                        pb.DecideRequest(request_id="r-old", item_code=req.item_code,
                                         facts=req.facts, materials=req.materials)
                    ).decision
                )  # fmt: skip
                limit = timestamp_pb2.Timestamp()
                limit.FromDatetime(dt.datetime.now(dt.UTC))
                new = stub.Decide(req).decision

                # The CLI: a future date is refused; today's midnight purges nothing yet.
                tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
                code, _, err = run("audit", "purge", "--before", tomorrow, "--target",
                                   server.target)  # fmt: skip
                assert code == 2 and "in the future" in err
                code, out, _ = run("audit", "purge", "--before", "2020-01-01", "--target",
                                   server.target)  # fmt: skip
                assert code == 0 and out.startswith("purged the cases of 0 decision(s)")

                done = stub.PurgeCases(pb.PurgeCasesRequest(before=limit))
                # seq 1 is the start's publication; the 2020 purge is seq 6 + 1
                start = PUBLISHED_AT_START
                assert done.purged == 4 and done.seq == start + 7

                got = stub.GetDecision(pb.GetDecisionRequest(decision_id=old[0].decision_id))
                assert got.case_purged and got.case == pb.GetDecisionResponse().case
                assert got.decision == old[0]  # the decision and its receipt stay
                fresh = stub.GetDecision(pb.GetDecisionRequest(decision_id=new.decision_id))
                assert not fresh.case_purged and fresh.case.fields["facts"]
                page = stub.ListDecisions(pb.ListDecisionsRequest(include_cases=True))
                assert list(page.case_purged) == [False, True, True, True, True]
                assert [d.receipt.seq for d in page.decisions] == [
                    start + n for n in (5, 4, 3, 2, 1)
                ]

                v = stub.VerifyAuditTrail(pb.VerifyAuditTrailRequest())
                assert (v.ok, v.checked, v.purged) == (True, start + 7, 4), v
                code, out, _ = run("audit", "verify", "--target", server.target)
                assert code == 0 and out.strip() == (
                    f"audit trail OK: {start + 7} records (4 with their case purged)"
                )
                # A retry of a purged request still answers from the record.
                retry = stub.Decide(
                    pb.DecideRequest(request_id="r-old", item_code=req.item_code,
                                     facts=req.facts, materials=req.materials)
                ).decision  # fmt: skip
                assert retry == old[3]
                public = stub.GetSealKey(pb.GetSealKeyRequest()).public_key
                for d in old:
                    saved = json_format.MessageToDict(d, preserving_proto_field_name=True)
                    assert verify_receipt(saved, public).ok
        finally:
            server.stop()


COMMENT = "窗口张三态度很好，电话13800138000"  # a citizen's words: personal data


class TestRatingComments:
    """A rating's comment is kept beside its sealed record (which holds a salted digest of
    it), so a purge erases it with the case it rates, and the trail still verifies."""

    def rated_server(self, tmp_path: Path) -> tuple[LiveServer, str, str]:
        server = LiveServer(Settings(listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path))
        req = pb.DecideRequest(item_code="GF00012000", materials=SENIOR_MATERIALS)
        json_format.ParseDict(SENIOR, req.facts)
        with grpc.insecure_channel(server.target) as ch:
            stub = pb_grpc.ApprovalServiceStub(ch)
            old, kept = stub.Decide(req).decision, stub.Decide(req).decision
            review = rpb_grpc.ReviewServiceStub(ch)
            for d, comment in ((old, COMMENT), (kept, "办事很快")):
                review.RateCase(
                    rpb.RateCaseRequest(decision_id=d.decision_id, score=5, comment=comment)
                )
        return server, old.decision_id, kept.decision_id

    def test_purge_erases_the_comment_with_the_case(self, tmp_path: Path) -> None:
        server, old, kept = self.rated_server(tmp_path)
        db = tmp_path / "audit.sqlite3"
        try:
            with contextlib.closing(sqlite3.connect(db)) as conn:
                bodies = [b for (b,) in conn.execute("SELECT body FROM records")]
                comments = dict(conn.execute("SELECT decision_id, comment FROM rating_comments"))
            assert comments == {old: COMMENT, kept: "办事很快"}
            assert not [b for b in bodies if "13800138000" in b or "办事很快" in b]
            assert sum('"comment_digest"' in b for b in bodies) == 2
            with grpc.insecure_channel(server.target) as ch:
                stub = pb_grpc.ApprovalServiceStub(ch)
                assert stub.VerifyAuditTrail(pb.VerifyAuditTrailRequest()).ok
                limit = timestamp_pb2.Timestamp()
                decided = stub.GetDecision(pb.GetDecisionRequest(decision_id=kept))
                limit.CopyFrom(decided.decision.decided_at)  # before the second decision
                done = stub.PurgeCases(pb.PurgeCasesRequest(before=limit))
                assert done.purged == 1
                event = json.loads(
                    sqlite3.connect(db)
                    .execute("SELECT body FROM records WHERE seq = ?", (done.seq,))
                    .fetchone()[0]
                )["event"]
                assert (event["purged"], event["comments_purged"]) == (1, 1)
                v = stub.VerifyAuditTrail(pb.VerifyAuditTrailRequest())
                assert (v.ok, v.purged) == (True, 1), v
            with contextlib.closing(sqlite3.connect(db)) as conn:
                left = dict(conn.execute("SELECT decision_id, comment FROM rating_comments"))
            assert left == {kept: "办事很快"}  # the later case keeps its rating's comment
            code, out, _ = run("audit", "verify", "--target", server.target)
            assert code == 0 and "1 with their case purged" in out
        finally:
            server.stop()
        content = b"".join(p.read_bytes() for p in tmp_path.glob("audit.sqlite3*"))
        assert b"13800138000" not in content  # overwritten, not just unlinked

    @pytest.mark.parametrize(
        ("sql", "reason"),
        [
            ("DELETE FROM rating_comments WHERE comment = '办事很快'",
             "rating comment missing, and no purge covers it"),
            ("UPDATE rating_comments SET comment = '很差' WHERE comment = '办事很快'",
             "rating comment does not match its digest"),
        ],
    )  # fmt: skip
    def test_a_comment_removed_or_changed_without_a_purge_is_caught(
        self, tmp_path: Path, sql: str, reason: str
    ) -> None:
        server, _, _ = self.rated_server(tmp_path)
        keys = server.running.store.keys
        server.stop()
        db = tmp_path / "audit.sqlite3"
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            conn.execute(sql)
        v = verify_database(db, keys)
        assert (v.ok, v.reason) == (False, reason), v
