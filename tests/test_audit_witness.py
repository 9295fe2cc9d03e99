"""The witness: the latest signed tree head outside the database. A trail that is behind it
(truncated, an old backup put back) or forked from it is refused at start and while serving,
and reported by `audit verify`; re-anchoring after a deliberate restore is an act on the record;
consistency proofs show that a saved head's records are still on the trail."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from structlog.testing import capture_logs

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_client.cli import main as cli
from miaopi_server.audit import seal
from miaopi_server.audit.sqlite import SQLiteAuditStore, verify_database
from miaopi_server.audit.transition import new_transition
from miaopi_server.audit.treehead import TreeHead
from miaopi_server.audit.witness import read_witness
from miaopi_server.casework.model import Action
from miaopi_server.casework.states import CLAIM
from miaopi_server.errors import AuditTrailDiverged, AuditUnavailable, DecisionNotFound
from miaopi_server.settings import Settings
from tests import rfc9162
from tests.conftest import LiveServer
from tests.support import PUBLISHED_AT_START, RULESETS, SENIOR, SENIOR_MATERIALS, pending


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with capture_logs(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(list(argv))
    return code, out.getvalue(), err.getvalue()


def open_store(state: Path, reanchor: str = "") -> SQLiteAuditStore:
    sealer, _ = seal.load_or_create(state / "seal_ed25519.pem")
    return SQLiteAuditStore(state / "audit.sqlite3", sealer, reanchor=reanchor, node_id="n-1")


def fill(state: Path, first: int, last: int) -> None:
    """Records first..last, in commits of three."""
    store = open_store(state)
    try:
        for start in range(first, last + 1, 3):
            futures = [store.append(pending(i)) for i in range(start, min(start + 3, last + 1))]
            for f in futures:
                f.result(timeout=10)
    finally:
        store.close()


def backup(state: Path, to: Path) -> None:
    with (
        contextlib.closing(sqlite3.connect(state / "audit.sqlite3")) as src,
        contextlib.closing(sqlite3.connect(to)) as dst,
    ):
        src.backup(dst)


def restore(state: Path, copy: Path) -> None:
    """Put a copy back as the database, as an operator restoring a backup would."""
    for suffix in ("-wal", "-shm"):
        (state / f"audit.sqlite3{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copy, state / "audit.sqlite3")


def cut_to(db: Path, size: int) -> None:
    """Truncate cleverly: records, their heads and their tree nodes, so that what is left is
    a trail consistent in itself."""
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DELETE FROM records WHERE seq > ?", (size,))
        conn.execute("DELETE FROM tree_heads WHERE tree_size > ?", (size,))
        conn.execute("DELETE FROM tree_nodes WHERE ((idx + 1) << level) > ?", (size,))


def keys_of(state: Path) -> dict[str, bytes]:
    sealer, _ = seal.load_or_create(state / "seal_ed25519.pem")
    return {sealer.key_id: sealer.public_raw}


def witness(state: Path) -> dict[str, object]:
    return dict(json.loads((state / "audit.witness.json").read_text(encoding="utf-8")))


def server_start(state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`miaopi-server` on the state directory, stopped at once if it does start."""
    argv = [
        *(sys.executable, "-m", "miaopi_server.app", "--rulesets", str(RULESETS)),
        *("--state-dir", str(state), "--listen", "127.0.0.1:0", "--insecure-no-auth", *extra),
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


class TestWitnessFile:
    def test_follows_every_commit(self, tmp_path):
        """After every commit the witness holds the head just signed, owner-only."""
        fill(tmp_path, 1, 7)
        store = open_store(tmp_path)
        try:
            head = store.latest_head()
            assert head is not None and head.tree_size == 7
            assert witness(tmp_path) == head.to_json()
            store.append(pending(8)).result(timeout=10)
            assert witness(tmp_path)["tree_size"] == 8
        finally:
            store.close()
        assert stat.S_IMODE((tmp_path / "audit.witness.json").stat().st_mode) == 0o600
        assert verify_database(tmp_path / "audit.sqlite3", keys_of(tmp_path)).ok


class TestBehindOrForked:
    @pytest.mark.parametrize("how", ["old backup", "newest rows cut, heads and nodes too"])
    def test_restart_refuses_a_trail_behind_its_witness(self, tmp_path, how):
        """Put back an older copy, or cut the newest rows with everything that covered them:
        the database agrees with itself, but not with the witness. The store refuses to
        open, the server refuses to start (exit 1, a clear message), verify reports it."""
        fill(tmp_path, 1, 6)
        if how == "old backup":
            backup(tmp_path, tmp_path / "backup.sqlite3")
            fill(tmp_path, 7, 12)
            restore(tmp_path, tmp_path / "backup.sqlite3")
        else:
            fill(tmp_path, 7, 12)
            cut_to(tmp_path / "audit.sqlite3", 6)
        db = tmp_path / "audit.sqlite3"
        assert verify_database(db, keys_of(tmp_path)).ok  # alone, it looks fine
        with pytest.raises(AuditTrailDiverged, match="behind its witness: 12 records"):
            open_store(tmp_path)
        proc = server_start(tmp_path)
        assert proc.returncode == 1
        assert "behind its witness" in proc.stderr and "--reanchor-witness" in proc.stderr
        assert "Traceback" not in proc.stderr
        code, out, _ = run("audit", "verify", "--db", str(db), "--key", str(self.pem(tmp_path)))
        assert code == 1 and out.startswith("audit trail BROKEN at seq 7: behind its witness")

    def test_a_forked_trail_is_refused(self, tmp_path):
        """Another trail of as many records or more, sealed by the same key, is not the one
        the witness signed."""
        other = tmp_path / "other"
        other.mkdir()
        fill(tmp_path, 1, 5)
        shutil.copyfile(tmp_path / "seal_ed25519.pem", other / "seal_ed25519.pem")
        store = open_store(other)
        try:
            for i in range(1, 9):  # different records (request ids) from the first one
                store.append(pending(i, request_id=f"fork-{i}")).result(timeout=10)
        finally:
            store.close()
        restore(tmp_path, other / "audit.sqlite3")
        with pytest.raises(AuditTrailDiverged, match="forked from its witness"):
            open_store(tmp_path)
        v = verify_database(
            tmp_path / "audit.sqlite3", keys_of(tmp_path), witness=open_witness(tmp_path)
        )
        assert (v.ok, v.first_bad_seq) == (False, 5) and "forked from its witness" in v.reason

    def test_cut_under_a_running_store_fails_closed(self, tmp_path):
        """Rows, heads and nodes cut while the store runs: the next commit is refused
        (UNAVAILABLE), no seq is handed out twice."""
        fill(tmp_path, 1, 6)
        store = open_store(tmp_path)
        try:
            store.append(pending(7)).result(timeout=10)
            cut_to(tmp_path / "audit.sqlite3", 6)  # a head of its own: consistent in itself
            with pytest.raises(AuditUnavailable, match="behind its witness: 7 records"):
                store.append(pending(8)).result(timeout=10)
        finally:
            store.close()

    def test_the_head_is_read_back_after_another_connection_commits(self, tmp_path):
        """A batch reads the trail's last record and head back from the database only when
        another connection committed since this store's last batch (PRAGMA data_version),
        as a second process on the same trail does (`--workers`); otherwise it continues
        from what it committed itself. The witness is read every time."""
        first = open_store(tmp_path)
        second = open_store(tmp_path)
        statements: list[str] = []
        first._writer.set_trace_callback(statements.append)

        def read_back() -> int:
            last = "SELECT seq, hash FROM records ORDER BY seq DESC"
            return sum(s.startswith(last) for s in statements)

        try:
            for n in range(1, 6):
                first.append(pending(n)).result(timeout=10)
            assert read_back() == 1  # the first batch; the next four continue from their own
            second.append(pending(6)).result(timeout=10)
            first.append(pending(7)).result(timeout=10)
            assert read_back() == 2  # the other store appended: read back, chained after it
            first.append(pending(8)).result(timeout=10)
            assert read_back() == 2
            # The other store appends, then this one commits a batch that writes nothing (a
            # refused move): it read the trail back, and its next batch continues from that.
            second.append(pending(9)).result(timeout=10)
            refused = new_transition("no-such-decision", Action(CLAIM, "r", AT), "n1", 1800)
            with pytest.raises(DecisionNotFound):
                first.transition(refused).result(timeout=10)
            assert read_back() == 3
            first.append(pending(10)).result(timeout=10)  # not refused as behind its witness
            assert read_back() == 3
            seqs = [first.get(f"d{n}").seq for n in range(5, 11)]  # type: ignore[union-attr]
            assert seqs == [5, 6, 7, 8, 9, 10]
        finally:
            second.close()
            first.close()
        v = verify_database(
            tmp_path / "audit.sqlite3", keys_of(tmp_path), witness=open_witness(tmp_path)
        )
        assert v.ok and v.checked == 10

    def test_a_missing_witness_is_refused(self, tmp_path):
        fill(tmp_path, 1, 3)
        (tmp_path / "audit.witness.json").unlink()
        with pytest.raises(AuditTrailDiverged, match=r"witness .* is missing"):
            open_store(tmp_path)

    @staticmethod
    def pem(state: Path) -> Path:
        sealer, _ = seal.load_or_create(state / "seal_ed25519.pem")
        path = state / "seal.pub.pem"
        path.write_text(sealer.public_pem, encoding="utf-8")
        return path


AT = dt.datetime(2026, 11, 23, 3, tzinfo=dt.UTC)


def open_witness(state: Path) -> TreeHead | None:
    return read_witness(state / "audit.witness.json")


class TestReanchor:
    def test_restore_procedure(self, tmp_path):
        """docs/AUDIT.md's procedure: restore the backup, re-anchor with a reason. The act is
        a record of its own in the chain (kind 'event', the head it abandons, the reason),
        decisions chain on after it, and it is not listed as a decision."""
        fill(tmp_path, 1, 6)
        backup(tmp_path, tmp_path / "backup.sqlite3")
        fill(tmp_path, 7, 12)
        abandoned = witness(tmp_path)
        restore(tmp_path, tmp_path / "backup.sqlite3")
        assert server_start(tmp_path).returncode == 1

        proc = server_start(tmp_path, "--reanchor-witness", "磁盘故障，从 12 月 1 日备份恢复")
        assert proc.returncode == 0, proc.stderr
        assert "witness re-anchored, recorded as seq 7" in proc.stdout
        assert witness(tmp_path)["tree_size"] == 7
        with contextlib.closing(sqlite3.connect(tmp_path / "audit.sqlite3")) as conn:
            kind, body = conn.execute("SELECT kind, body FROM records WHERE seq = 7").fetchone()
        event = json.loads(body)["event"]
        assert kind == "event" and event["type"] == "witness_reanchored"
        assert event["reason"] == "磁盘故障，从 12 月 1 日备份恢复"
        assert event["abandoned_witness"] == abandoned
        assert event["database_head"]["tree_size"] == 6
        assert "behind its witness" in event["problem"]

        server = LiveServer(Settings(listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path))
        try:
            with grpc.insecure_channel(server.target) as ch:
                stub = pb_grpc.ApprovalServiceStub(ch)
                req = pb.DecideRequest(item_code="GF00012000", materials=SENIOR_MATERIALS)
                json_format.ParseDict(SENIOR, req.facts)
                d = stub.Decide(req).decision
                # seq 8: the start's publication of its rule set (not a decision), then this
                assert d.receipt.seq == 8 + PUBLISHED_AT_START
                listed = stub.ListDecisions(pb.ListDecisionsRequest()).decisions
                assert [x.receipt.seq for x in listed] == [d.receipt.seq, 6, 5, 4, 3, 2, 1]
                v = stub.VerifyAuditTrail(pb.VerifyAuditTrailRequest())
                assert (v.ok, v.checked) == (True, d.receipt.seq), v
        finally:
            server.stop()
        again = server_start(tmp_path, "--reanchor-witness", "again")
        assert again.returncode == 0 and "nothing re-anchored" in again.stdout


class TestConsistencyProofs:
    def test_saved_receipts_against_the_live_trail(self, tmp_path):
        """A saved decision's head is proven a prefix of the latest head, by the server and
        offline from the database; after the trail was cut below it, it is not."""
        server = LiveServer(Settings(listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path))
        req = pb.DecideRequest(item_code="GF00012000", materials=SENIOR_MATERIALS)
        json_format.ParseDict(SENIOR, req.facts)
        try:
            with grpc.insecure_channel(server.target) as ch:
                stub = pb_grpc.ApprovalServiceStub(ch)
                made = [stub.Decide(req).decision for _ in range(9)]
                size = 9 + PUBLISHED_AT_START  # the start's publication event comes first
                public = stub.GetSealKey(pb.GetSealKeyRequest())
                for d in made:  # the RPC's proofs, by the RFC 9162 verifier
                    head = d.receipt.tree_head
                    got = stub.GetConsistencyProof(
                        pb.GetConsistencyProofRequest(first_tree_size=head.tree_size)
                    )
                    assert got.second.tree_size == size
                    assert rfc9162.verify_consistency(
                        head.tree_size, size, bytes.fromhex(head.root_hash),
                        bytes.fromhex(got.second.root_hash), [bytes.fromhex(h) for h in got.proof],
                    )  # fmt: skip
                for bad in (0, size + 1, -1):
                    with pytest.raises(grpc.RpcError) as info:
                        stub.GetConsistencyProof(pb.GetConsistencyProofRequest(first_tree_size=bad))
                    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                saved = tmp_path / "d3.json"
                saved.write_text(
                    json_format.MessageToJson(made[2], preserving_proto_field_name=True),
                    encoding="utf-8",
                )
                code, out, _ = run(
                    "audit", "prove-consistency", str(saved), "--target", server.target
                )
                first = 3 + PUBLISHED_AT_START
                assert code == 0 and out.startswith(
                    f"consistent: the signed tree of {first} records"
                )
        finally:
            server.stop()
        pem = tmp_path / "seal.pub.pem"
        pem.write_text(public.public_key_pem, encoding="utf-8")
        db = tmp_path / "audit.sqlite3"
        code, out, _ = run("audit", "prove-consistency", str(saved), "--db", str(db),
                           "--key", str(pem))  # fmt: skip
        assert code == 0, out
        code, out, _ = run("audit", "prove-consistency", str(tmp_path / "audit.witness.json"),
                           "--db", str(db), "--key", str(pem))  # fmt: skip
        assert code == 0 and f"of {size} records" in out

        cut = tmp_path / "cut.sqlite3"
        shutil.copyfile(db, cut)
        cut_to(cut, 2)
        code, out, _ = run("audit", "prove-consistency", str(saved), "--db", str(cut),
                           "--key", str(pem))  # fmt: skip
        assert code == 1 and out.startswith("NOT consistent")
        code, out, _ = run("audit", "prove-consistency", str(saved), "--db", str(cut),
                           "--key", str(pem), "--json")  # fmt: skip
        got = json.loads(out)
        assert code == 1 and got["ok"] is False and got["first"] == first and got["reason"]
        garbage = tmp_path / "not-a-database.sqlite3"
        garbage.write_bytes("not a database, 不是数据库\n".encode() * 200)
        code, out, err = run("audit", "prove-consistency", str(saved), "--db", str(garbage),
                             "--key", str(pem))  # fmt: skip
        assert code == 2 and f"cannot read audit database {garbage}" in err, (out, err)
        other = tmp_path / "other.sqlite3"  # a database, but not an audit trail
        with sqlite3.connect(other) as conn:
            conn.execute("CREATE TABLE t (x)")
        code, out, err = run("audit", "prove-consistency", str(saved), "--db", str(other),
                             "--key", str(pem))  # fmt: skip
        assert code == 2 and f"audit database {other} is not an audit trail" in err, (out, err)
        # A forged later head (another key) is not accepted either.
        code, out, _ = run("audit", "prove-consistency", str(saved), "--db", str(db),
                           "--key", str(TestBehindOrForked.pem(tmp_path / "x")))  # fmt: skip
        assert code == 1 and "unknown sealing key" in out
