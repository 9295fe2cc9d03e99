"""The audit trail: durable before acknowledgement, tamper-evident, idempotent, fail-closed."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import sqlite3
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_server.audit import seal
from miaopi_server.audit.canonical import canonical
from miaopi_server.audit.record import canonical_body, case_digest
from miaopi_server.audit.sqlite import SQLiteAuditStore, verify_database
from miaopi_server.errors import AuditTrailDiverged, AuditUnavailable
from miaopi_server.settings import Settings
from tests import rfc9162
from tests.conftest import LiveServer, ServerProcess
from tests.support import (
    PUBLISHED_AT_START,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    pending,
    with_facts,
)


def request(facts=SENIOR, materials=SENIOR_MATERIALS, **kw) -> pb.DecideRequest:
    req = pb.DecideRequest(item_code="GF00012000", materials=materials, **kw)
    json_format.ParseDict(facts, req.facts)
    return req


@pytest.fixture(scope="module")
def stub(live_server):
    with grpc.insecure_channel(live_server.target) as channel:
        yield pb_grpc.ApprovalServiceStub(channel)


def head_bytes(head: pb.TreeHead) -> bytes:
    """What a tree head's signature covers, as docs/AUDIT.md defines it."""
    fields = {
        "root_hash": head.root_hash,
        "timestamp": head.timestamp,
        "tree_size": head.tree_size,
        "type": "miaopi.tree_head.v1",
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def assert_sealed_by_tree(r: pb.Receipt, public_key: bytes) -> None:
    """The receipt's head is signed by the key and its proof puts the record in that tree,
    checked with cryptography and the RFC 9162 verifier of tests/rfc9162.py only."""
    Ed25519PublicKey.from_public_bytes(public_key).verify(
        r.tree_head.signature, head_bytes(r.tree_head)
    )
    assert rfc9162.verify_inclusion(
        r.seq - 1,
        r.tree_head.tree_size,
        rfc9162.leaf(bytes.fromhex(r.record_hash)),
        [bytes.fromhex(h) for h in r.inclusion_proof],
        bytes.fromhex(r.tree_head.root_hash),
    )


def make_store(tmp_path: Path) -> SQLiteAuditStore:
    sealer, _ = seal.load_or_create(tmp_path / "key.pem")
    return SQLiteAuditStore(tmp_path / "audit.sqlite3", sealer)


class TestRecording:
    def test_decision_carries_receipt(self, stub, live_server):
        """A decision is on the record with its seq, chain hash and a seal that verifies."""
        d = stub.Decide(request(window=pb.Window(window_id="w-7", operator_id="op-1"))).decision
        r = d.receipt
        assert r.seq >= 1 and len(r.record_hash) == 64 and r.key_id.startswith("ed25519:")
        key = stub.GetSealKey(pb.GetSealKeyRequest())
        assert key.key_id == r.key_id == r.tree_head.key_id
        assert r.signature == b""  # sealed by the tree head of its commit, not one by one
        assert r.tree_head.tree_size >= r.seq
        assert_sealed_by_tree(r, key.public_key)
        assert (r.window.window_id, r.window.operator_id) == ("w-7", "op-1")
        again = stub.GetDecision(pb.GetDecisionRequest(decision_id=d.decision_id))
        assert again.decision == d
        assert json_format.MessageToDict(again.case)["facts"]["applicant"]["name"] == "陈建国"

    def test_get_unknown_decision(self, stub):
        """An unknown decision id is NOT_FOUND."""
        with pytest.raises(grpc.RpcError) as info:
            stub.GetDecision(pb.GetDecisionRequest(decision_id="nope"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

    def test_invalid_cases_are_not_recorded(self, stub, live_server):
        """Input errors are not decisions and leave no record."""
        before = stub.VerifyAuditTrail(pb.VerifyAuditTrailRequest()).checked
        with pytest.raises(grpc.RpcError):
            stub.Decide(request(with_facts(SENIOR, applicant__id_number="1")))
        assert stub.VerifyAuditTrail(pb.VerifyAuditTrailRequest()).checked == before

    def test_files_are_owner_only(self, live_server):
        """The audit database (it holds facts) and the sealing key are created 0600."""
        store = live_server.running.store
        for path in (store.path, store.path.parent / "seal_ed25519.pem"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_concurrent_decisions_are_group_committed(self, live_server, stub):
        """Under concurrency several records share one commit and one signed tree head; each
        receipt proves its record is in its head's tree (RFC 9162), and the chain verifies."""
        store = live_server.running.store
        batches, written = store.batches, store.records_written
        with ThreadPoolExecutor(32) as pool:
            made = list(pool.map(lambda _: stub.Decide(request()).decision, range(256)))
        assert store.records_written - written == 256
        assert store.batches - batches < 256
        heads = {d.receipt.tree_head.tree_size for d in made}
        assert len(heads) < 256  # one head per commit, shared by its records
        public = stub.GetSealKey(pb.GetSealKeyRequest()).public_key
        for d in made:
            assert_sealed_by_tree(d.receipt, public)
            again = stub.GetDecision(pb.GetDecisionRequest(decision_id=d.decision_id))
            assert again.decision == d  # the receipt first given, proof included
        assert stub.VerifyAuditTrail(pb.VerifyAuditTrailRequest()).ok


def test_canonical_is_the_documented_formula():
    """canonical() dispatches on exact types for speed; subclasses and every number shape must
    still give what the documented one-liner gives (integral floats as integers)."""
    import collections
    import json

    class Num(float):
        pass

    values = [
        {"b": [1.0, 2.5, -0.0, 1e16, 3], "a": {"z": None, "y": True, "x": "中文"}},
        collections.OrderedDict([("k", (1.0, [2.0, {"m": Num(4.0)}]))]),
        [Num(2.5), (), {}, "e+1.0]", False, 0],
    ]
    for v in values:
        formula = json.dumps(
            json.loads(
                json.dumps(v),
                parse_float=lambda t: int(float(t)) if float(t).is_integer() else float(t),
            ),
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        assert canonical(v) == formula


class TestCanonicalBody:
    @pytest.mark.parametrize("i", range(6))
    def test_spliced_body_is_the_canonical_body(self, i):
        """The writer splices the body from canonical parts; it must be byte for byte the
        canonical JSON of the documented body, or stored hashes would not verify."""
        window = {"window_id": '窗口\u2028"1"', "operator_id": "op", "principal_id": "p/1"}
        decision = {"decision_id": f"d{i}", "outcome": "OUTCOME_APPROVE", "x": [1.0, 2.5]}
        p = pending(i, window=window, node_id="节点-1", decision=decision)
        for seq, prev in ((1, "0" * 64), (10**12, "ab" * 32)):
            body = {
                "seq": seq,
                "prev_hash": prev,
                "node_id": "节点-1",
                "case_digest": p.case_digest,
                "window": window,
                "decision": decision,
            }
            assert canonical_body(seq, prev, p) == canonical(body)

    def test_recorded_case_digest_is_case_digest(self, stub, live_server):
        """The digest the recorder computes from the case's canonical bytes is case_digest."""
        d = stub.Decide(request()).decision
        facts = json_format.MessageToDict(request().facts)
        assert d.receipt.case_digest == case_digest("GF00012000", facts, SENIOR_MATERIALS)


class TestIdempotency:
    def test_concurrent_duplicates_make_one_record(self, stub, live_server):
        """N concurrent calls with one request_id produce one record and one decision_id."""
        before = live_server.running.store.records_written
        with ThreadPoolExecutor(16) as pool:
            ids = set(
                pool.map(
                    lambda _: stub.Decide(request(request_id="dup-1")).decision.decision_id,
                    range(40),
                )
            )
        assert len(ids) == 1
        assert live_server.running.store.records_written - before == 1

    def test_same_request_id_other_case_refused(self, stub):
        """Reusing a request_id for a different case is ALREADY_EXISTS naming the decision."""
        first = stub.Decide(request(request_id="dup-2")).decision
        other = with_facts(SENIOR, applicant__hukou_region="440604")
        with pytest.raises(grpc.RpcError) as info:
            stub.Decide(request(other, request_id="dup-2"))
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
        status = rpc_status.from_call(info.value)
        err = error_details_pb2.ErrorInfo()
        assert status is not None and status.details[0].Unpack(err)
        assert err.metadata["decision_id"] == first.decision_id

    def test_retry_returns_the_original(self, stub):
        """A retried request gets the original decision, receipt included."""
        a = stub.Decide(request(request_id="retry-1")).decision
        b = stub.Decide(request(request_id="retry-1")).decision
        assert a == b


class TestTampering:
    @pytest.mark.parametrize(
        ("sql", "reason"),
        [
            (
                "UPDATE records SET body = replace(body, 'OUTCOME_APPROVE', 'OUTCOME_REJECT')"
                " WHERE seq = 3",
                "hash mismatch",
            ),
            ("UPDATE records SET outcome = 'REJECT' WHERE seq = 3", "indexed columns disagree"),
            (
                "UPDATE records SET decided_at = '2020-01-01T00:00:00.000000Z' WHERE seq = 3",
                "indexed columns disagree",
            ),
            (
                "UPDATE cases SET case_json = replace(case_json, '3', '4') WHERE seq = 3",
                "case does not match",
            ),
            ("DELETE FROM cases WHERE seq = 3", "case missing, and no purge covers it"),
            ("UPDATE records SET signature = X'00' WHERE seq = 3", "bad signature"),
            ("DELETE FROM records WHERE seq = 3", "gap"),
        ],
    )
    def test_one_changed_record_is_found(self, tmp_path, sql, reason):
        """Changing one field of one stored record makes verification name exactly that seq."""
        store = make_store(tmp_path)
        for i in range(1, 6):
            store.append(pending(i)).result()
        assert store.verify().ok
        store.close()
        with sqlite3.connect(tmp_path / "audit.sqlite3") as conn:
            conn.execute(sql)
        keys = {store.sealer.key_id: store.sealer.public_raw}
        result = verify_database(tmp_path / "audit.sqlite3", keys)
        assert (result.ok, result.first_bad_seq) == (False, 3)
        assert reason in result.reason

    def test_every_stored_column_is_covered(self, tmp_path):
        """Editing any one column of a stored record, to any other value of its kind, is
        found at that seq: each column is covered by the hash or derived from what is (a
        forged decided_at would falsify time-range queries)."""
        store = make_store(tmp_path)
        for i in range(1, 6):
            store.append(pending(i, request_id=f"r{i}")).result()
        store.close()
        db = tmp_path / "audit.sqlite3"
        keys = {store.sealer.key_id: store.sealer.public_raw}
        with sqlite3.connect(db) as conn:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(records)")]
        assert "decided_at" in columns
        for column in columns:
            copy_path = tmp_path / f"edit-{column}.sqlite3"
            with sqlite3.connect(db) as src, sqlite3.connect(copy_path) as dst:
                src.backup(dst)
            with sqlite3.connect(copy_path) as conn:
                value = conn.execute(f"SELECT {column} FROM records WHERE seq = 3").fetchone()[0]
                if column == "seq":
                    edited: object = 99
                elif isinstance(value, bytes):  # a signature (empty since the tree seals)
                    edited = bytes([value[0] ^ 1]) + value[1:] if value else b"\x00"
                elif column == "decided_at":  # a minute earlier, still a well-formed time
                    edited = value.replace("00:00:03", "00:00:02")
                else:
                    edited = value[:-2] + ("x" if value[-2] != "x" else "y") + value[-1]
                conn.execute(f"UPDATE records SET {column} = ? WHERE seq = 3", (edited,))
            result = verify_database(copy_path, keys)
            assert (result.ok, result.first_bad_seq) == (False, 3), (column, result)

    @pytest.mark.parametrize(("seq", "reason"), [(2, "chain broken"), (4, "does not match")])
    def test_rehashed_record_breaks_the_chain_or_the_tree(self, tmp_path, seq, reason):
        """Rewriting a record and recomputing its hash breaks the chain at the next record,
        or, for the newest record, the signed tree head over it."""
        store = make_store(tmp_path)
        for i in range(1, 5):
            store.append(pending(i)).result()
        store.close()
        with sqlite3.connect(tmp_path / "audit.sqlite3") as conn:
            body_text = conn.execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()[0]
            body = json.loads(body_text)
            body["window"]["operator_id"] = "someone-else"
            text = canonical(body).decode()
            conn.execute(
                "UPDATE records SET body = ?, hash = ? WHERE seq = ?",
                (text, hashlib.sha256(text.encode()).hexdigest(), seq),
            )
        result = verify_database(
            tmp_path / "audit.sqlite3", {store.sealer.key_id: store.sealer.public_raw}
        )
        assert (result.ok, result.first_bad_seq) == (False, min(seq + 1, 4))
        assert reason in result.reason

    def test_range_verification(self, tmp_path):
        """A sequence range can be verified on its own."""
        store = make_store(tmp_path)
        for i in range(1, 8):
            store.append(pending(i)).result()
        result = store.verify(3, 5)
        store.close()
        assert (result.ok, result.checked) == (True, 3)

    def test_verify_rpc_reports_the_broken_seq(self, tmp_path):
        """VerifyAuditTrail over gRPC reports the first broken sequence number."""
        server = LiveServer(Settings(listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path))
        try:
            with grpc.insecure_channel(server.target) as ch:
                s = pb_grpc.ApprovalServiceStub(ch)
                for _ in range(4):
                    s.Decide(request())
                with sqlite3.connect(tmp_path / "audit.sqlite3") as conn:
                    conn.execute("UPDATE records SET window_id = 'x' WHERE seq = 2")
                v = s.VerifyAuditTrail(pb.VerifyAuditTrailRequest())
            assert (v.ok, v.first_bad_seq) == (False, 2)
        finally:
            server.stop()


class TestTransparencyLog:
    @staticmethod
    def store_with_batches(tmp_path: Path, sizes: tuple[int, ...]) -> SQLiteAuditStore:
        """A store whose records came in commits of `sizes` (appends queued together)."""
        store = make_store(tmp_path)
        n = 0
        for size in sizes:
            futures = [store.append(pending(n + i + 1)) for i in range(size)]
            for f in futures:
                f.result(timeout=10)
            n += size
        return store

    def test_consistency_proofs_between_every_pair_of_heads(self, tmp_path):
        """Every signed head is consistent with every later one, by the RFC 9162 verifier
        (sizes crossing powers of two, one-record commits, a 33-record commit)."""
        store = self.store_with_batches(tmp_path, (1, 1, 2, 3, 1, 8, 33, 5, 1))
        try:
            with sqlite3.connect(tmp_path / "audit.sqlite3") as conn:
                heads = conn.execute(
                    "SELECT tree_size, root_hash FROM tree_heads ORDER BY tree_size"
                ).fetchall()
            assert heads[-1][0] == 55 and len(heads) >= 5
            for first, first_root in heads:
                for second, second_root in heads:
                    if second < first:
                        continue
                    head, proof = store.consistency(first, second)
                    assert head.root_hash == second_root
                    assert rfc9162.verify_consistency(
                        first, second, bytes.fromhex(first_root), bytes.fromhex(second_root), proof
                    ), (first, second)
                    if proof:  # a proof for another prefix fails
                        assert not rfc9162.verify_consistency(
                            first, second, bytes(32), bytes.fromhex(second_root), proof
                        )
            assert store.verify().ok
        finally:
            store.close()

    def test_every_record_is_in_its_head(self, tmp_path):
        store = self.store_with_batches(tmp_path, (3, 1, 12, 7))
        try:
            for seq in range(1, 24):
                r = store.get(f"d{seq}")
                assert r is not None and r.tree_head is not None
                head = r.tree_head
                assert head.verifies({store.sealer.key_id: store.sealer.public_raw})
                assert rfc9162.verify_inclusion(
                    seq - 1,
                    head.tree_size,
                    rfc9162.leaf(bytes.fromhex(r.record_hash)),
                    [bytes.fromhex(h) for h in r.inclusion_proof],
                    bytes.fromhex(head.root_hash),
                )
        finally:
            store.close()

    @pytest.mark.parametrize(
        ("sql", "bad_seq", "reason"),
        [
            ("DELETE FROM records WHERE seq > 20", 21, "truncated"),
            ("DELETE FROM records", 1, "truncated"),
            ("UPDATE tree_heads SET root_hash = hex(zeroblob(32)) WHERE tree_size = 4", 4,
             "does not match"),
            ("UPDATE tree_heads SET signature = X'00' WHERE tree_size = 4", 4, "bad signature"),
            ("UPDATE tree_heads SET timestamp = timestamp + 1 WHERE tree_size = 4", 4,
             "bad signature"),
            ("UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 1", 8,
             "tree node (2, 1)"),
            ("DELETE FROM tree_nodes WHERE level = 1 AND idx = 5", 12, "tree node (1, 5)"),
            ("INSERT INTO tree_nodes VALUES (9, 0, zeroblob(32))", 23, "beyond the records"),
            ("UPDATE records SET signature = X'00' WHERE seq = 2", 2, "bad signature"),
        ],
    )  # fmt: skip
    def test_tree_and_heads_are_checked(self, tmp_path, sql, bad_seq, reason):
        """Every stored part of the tree is checked: heads (root, signature, timestamp),
        nodes, and a head beyond the records (the newest rows deleted) is truncation."""
        store = self.store_with_batches(tmp_path, (3, 1, 12, 7))
        store.close()
        with sqlite3.connect(tmp_path / "audit.sqlite3") as conn:
            conn.execute(sql)
        keys = {store.sealer.key_id: store.sealer.public_raw}
        result = verify_database(tmp_path / "audit.sqlite3", keys)
        assert (result.ok, result.first_bad_seq) == (False, bad_seq), result
        assert reason in result.reason

    def test_the_documented_verifier_works(self, tmp_path, monkeypatch):
        """docs/AUDIT.md's few lines verify a trail with commits, events and a purge, and
        catch the newest records cut off (a head is left beyond them)."""
        doc = (Path(__file__).resolve().parents[1] / "docs" / "AUDIT.md").read_text("utf-8")
        match = re.search(r"## Verifying the trail yourself\n.*?```python\n(.*?)```", doc, re.S)
        assert match is not None
        store = self.store_with_batches(tmp_path, (1, 3, 2, 7))
        store.purge("2026-11-23T00:00:05.000000Z", "admin")
        store.append(pending(99)).result(timeout=10)
        store.close()
        monkeypatch.chdir(tmp_path)
        exec(match[1], {"PUBLIC_KEY_RAW": store.sealer.public_raw})
        with contextlib.closing(sqlite3.connect(tmp_path / "audit.sqlite3")) as conn, conn:
            conn.execute("DELETE FROM records WHERE seq > 10")
        with pytest.raises(AssertionError):
            exec(match[1], {"PUBLIC_KEY_RAW": store.sealer.public_raw})

    def test_truncated_trail_is_not_appended_to(self, tmp_path):
        """A store whose newest records were deleted under it fails closed instead of
        reusing their sequence numbers, and one opened on such a trail refuses to start."""
        store = self.store_with_batches(tmp_path, (3, 2))
        try:
            with sqlite3.connect(tmp_path / "audit.sqlite3") as conn:
                conn.execute("DELETE FROM records WHERE seq > 3")
            with pytest.raises(AuditUnavailable, match="holds 3 records but its last signed"):
                store.append(pending(9)).result(timeout=10)
        finally:
            store.close()
        with pytest.raises(AuditTrailDiverged, match="records were removed"):
            make_store(tmp_path)


class TestFailClosed:
    def test_unwritable_store_gives_unavailable_and_no_decision(self, tmp_path):
        """With the database locked by another process, Decide is UNAVAILABLE; then recovers."""
        server = LiveServer(
            Settings(
                listen="127.0.0.1:0",
                rulesets=RULESETS,
                state_dir=tmp_path,
                audit_busy_timeout_ms=200,
            )
        )
        try:
            with grpc.insecure_channel(server.target) as ch:
                s = pb_grpc.ApprovalServiceStub(ch)
                s.Decide(request())
                blocker = sqlite3.connect(tmp_path / "audit.sqlite3", isolation_level=None)
                blocker.execute("BEGIN EXCLUSIVE")
                with pytest.raises(grpc.RpcError) as info:
                    s.Decide(request(request_id="locked-1"))
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
                blocker.execute("ROLLBACK")
                blocker.close()
                after = s.Decide(request(request_id="locked-1")).decision
                # the refused decision left no record
                assert after.receipt.seq == PUBLISHED_AT_START + 2
                assert s.VerifyAuditTrail(pb.VerifyAuditTrailRequest()).ok
        finally:
            server.stop()

    def test_writers_lock_held_elsewhere_fails_closed(self, tmp_path):
        """A writer in another process that holds the writers' lock and hangs (stopped,
        frozen) does not hang this one: after the busy timeout the append fails, and once the
        lock is free appends go through again."""
        sealer, _ = seal.load_or_create(tmp_path / "key.pem")
        store = SQLiteAuditStore(tmp_path / "audit.sqlite3", sealer, busy_timeout_ms=300)
        holder = os.open(tmp_path / "audit.sqlite3.writelock", os.O_RDWR)
        try:
            fcntl.flock(holder, fcntl.LOCK_EX)
            started = time.monotonic()
            with pytest.raises(AuditUnavailable, match="lock busy"):
                store.append(pending(1)).result(timeout=10)
            assert 0.3 <= time.monotonic() - started < 5
            fcntl.flock(holder, fcntl.LOCK_UN)
            assert store.append(pending(2)).result(timeout=10).seq == 1
        finally:
            os.close(holder)
            store.close()


class TestCheckpoints:
    def test_checkpointed_in_the_background_not_in_a_commit(self, tmp_path):
        """Commits never copy the WAL into the database (no auto-checkpoint); a background
        thread does, within about a second, and closing leaves the database whole."""
        store = make_store(tmp_path)
        db = tmp_path / "audit.sqlite3"
        try:
            assert store._writer.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
            empty = db.stat().st_size
            for i in range(1, 300):
                store.append(pending(i)).result(timeout=10)
            deadline = time.monotonic() + 10
            while db.stat().st_size == empty and time.monotonic() < deadline:
                time.sleep(0.05)
            assert db.stat().st_size > empty  # records copied into the database file
        finally:
            store.close()
        assert not (tmp_path / "audit.sqlite3-wal").exists()
        assert verify_database(db, {store.sealer.key_id: store.sealer.public_raw}).checked == 299


@pytest.mark.slow
class TestCrash:
    def test_kill_9_mid_burst_loses_no_acknowledged_decision(self, tmp_path):
        """kill -9 during a burst: every acknowledged decision survives and the chain verifies."""

        server = ServerProcess(RULESETS, tmp_path)
        target = server.target
        acked: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client() -> None:
            with grpc.insecure_channel(target) as ch:
                s = pb_grpc.ApprovalServiceStub(ch)
                while not stop.is_set():
                    try:
                        d = s.Decide(request(), timeout=5).decision
                    except grpc.RpcError:
                        return
                    with lock:
                        acked.append(d.decision_id)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()  # SIGKILL: no chance to flush or close anything
        stop.set()
        for t in threads:
            t.join(timeout=10)
        assert len(acked) >= 300

        server = ServerProcess(RULESETS, tmp_path)
        target = server.target
        try:
            with grpc.insecure_channel(target) as ch:
                s = pb_grpc.ApprovalServiceStub(ch)
                for decision_id in acked:
                    s.GetDecision(pb.GetDecisionRequest(decision_id=decision_id), timeout=5)
                v = s.VerifyAuditTrail(pb.VerifyAuditTrailRequest(), timeout=30)
                assert v.ok, v.reason
                assert v.checked >= len(acked)
                assert s.Decide(request(), timeout=5).decision.receipt.seq == v.checked + 1
        finally:
            server.signal(signal.SIGTERM)
            server.wait()


class TestKeyRotation:
    def test_rotated_key_records_still_verify(self, tmp_path):
        """After rotating the sealing key, old records verify with the old public key."""
        state = tmp_path / "state"

        def run(key: str, previous: tuple[Path, ...] = ()) -> pb.VerifyAuditTrailResponse:
            server = LiveServer(
                Settings(
                    listen="127.0.0.1:0",
                    rulesets=RULESETS,
                    state_dir=state,
                    seal_key=tmp_path / key,
                    previous_seal_keys=previous,
                )
            )
            try:
                with grpc.insecure_channel(server.target) as ch:
                    s = pb_grpc.ApprovalServiceStub(ch)
                    s.Decide(request())
                    (tmp_path / f"{key}.pub").write_text(
                        s.GetSealKey(pb.GetSealKeyRequest()).public_key_pem, encoding="utf-8"
                    )
                    return s.VerifyAuditTrail(pb.VerifyAuditTrailRequest())
            finally:
                server.stop()

        assert run("old.pem").ok
        without = run("new.pem")
        assert (without.ok, without.first_bad_seq) == (False, 1)
        assert "unknown sealing key" in without.reason
        rotated = run("new.pem", (tmp_path / "old.pem.pub",))
        assert (rotated.ok, rotated.checked) == (True, PUBLISHED_AT_START + 3)


class TestCancellation:
    def test_cancelled_callers_do_not_stop_the_writer(self, tmp_path):
        """A caller that cancels its pending append leaves the writer thread working."""
        store = make_store(tmp_path)
        try:
            futures = [store.append(pending(i)) for i in range(1, 200)]
            for f in futures[::3]:
                f.cancel()
            done = [f.result(timeout=10) for f in futures if not f.cancelled()]
            assert done
            assert store.append(pending(999)).result(timeout=10).seq == len(done) + 1
            assert store.verify().ok
        finally:
            store.close()

    def test_an_async_caller_that_stops_waiting_keeps_its_record(self, tmp_path):
        """append_async: every future resolves with its own record once committed, and one
        cancelled while waiting (its RPC gone) is still written, as a shielded write was."""
        store = make_store(tmp_path)

        async def appends() -> tuple[list[int], int]:
            futures = [store.append_async(pending(i)) for i in range(1, 120)]
            for f in futures[::4]:
                f.cancel()
            kept = [f for f in futures if not f.cancelled()]
            records = await asyncio.gather(*kept)
            assert [r.decision_id for r in records] == [
                f"d{i}" for i in range(1, 120) if (i - 1) % 4
            ]
            last = await store.append_async(pending(999))
            return [r.seq for r in records], last.seq

        try:
            seqs, last = asyncio.run(appends())
            assert len(set(seqs)) == len(seqs)
            assert last == 120  # the 30 cancelled were written too
            with sqlite3.connect(tmp_path / "audit.sqlite3") as conn:
                (n,) = conn.execute(
                    "SELECT count(*) FROM records WHERE kind = 'decision'"
                ).fetchone()
            assert n == 120
            assert store.verify().ok
        finally:
            store.close()
