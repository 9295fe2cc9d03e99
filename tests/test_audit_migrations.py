"""The audit database's schema versions: numbered migrations applied once at store start,
old databases adopted, newer ones refused, concurrent starts and failed migrations safe."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_server.audit import migrations, seal
from miaopi_server.audit.migrations import Migration
from miaopi_server.audit.sqlite import SQLiteAuditStore, verify_database
from miaopi_server.audit.sqlite_migrate import statements
from miaopi_server.audit.store import ListFilter
from miaopi_server.errors import AuditSchemaTooNew, AuditUnavailable
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.support import RULESETS, SENIOR, SENIOR_MATERIALS, pending

# Written by the server as of commit ebea569 (before schema versions): six real decisions
# (approve, reject, manual review; three items; request ids and window ids in Chinese) made
# over gRPC by tests/data/make_audit_v0_fixture.py, which says how to run it again. Only the
# public half of the seal key that signed them is kept.
DATA = Path(__file__).resolve().parent / "data"
OLD_DB = DATA / "audit-v0-ebea569.sqlite3"
OLD_KEY_PEM = DATA / "audit-v0-ebea569.seal.pub.pem"
OLD_RECORDS = 6
SHIPPED = migrations.load()
NEWEST = SHIPPED[-1].version


@pytest.fixture()
def old_db(tmp_path: Path) -> Path:
    """A copy of the fixture (never opened in place: opening leaves -wal / -shm beside it)."""
    path = tmp_path / "state" / "audit.sqlite3"
    path.parent.mkdir()
    shutil.copyfile(OLD_DB, path)
    return path


def old_key() -> dict[str, bytes]:
    raw = seal.public_key_from_pem(OLD_KEY_PEM.read_text(encoding="utf-8"))
    return {seal.key_id_of(raw): raw}


def new_sealer(tmp_path: Path) -> seal.Sealer:
    return seal.load_or_create(tmp_path / "key.pem")[0]


def versions(db: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT version, name FROM schema_version ORDER BY version").fetchall()


def tables(db: Path) -> set[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def schema_of(db: Path) -> set[tuple[str, str, str | None]]:
    """Every table and index as sqlite_master holds it, the version table left out."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    return {r for r in rows if r[1] != "schema_version"}


def raw_records(db: Path) -> dict[str, tuple[object, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT decision_id, seq, request_id, case_digest, body, case_json, hash, key_id,"
            " signature FROM records ORDER BY seq"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


class TestDatabaseFromBeforeVersions:
    def test_request_ids_become_per_window(self, old_db: Path, tmp_path: Path):
        """0002 keeps every old request_id answerable by its own window, and lets another
        window use the same id for a record of its own."""
        with sqlite3.connect(old_db) as conn:
            rows = conn.execute(
                "SELECT window_id, request_id, decision_id FROM records WHERE request_id != ''"
            ).fetchall()
        assert rows
        store = SQLiteAuditStore(old_db, new_sealer(tmp_path), previous_keys=old_key())
        try:
            for window_id, request_id, decision_id in rows:
                found = store.find_request(window_id, request_id)
                assert found is not None and found.decision_id == decision_id
                assert store.find_request(window_id + "-other", request_id) is None
            _, request_id, _ = rows[0]
            theirs = pending(99, request_id=request_id)  # window "w1", not the old record's
            assert theirs.window_id != rows[0][0]
            record = store.append(theirs).result(timeout=10)
            assert store.find_request(theirs.window_id, request_id) == record
            assert store.verify().ok
        finally:
            store.close()

    def test_opens_migrates_reads_back_and_chains_on(self, old_db: Path, tmp_path: Path):
        """The old database is taken as version 1 without re-running 0001; its records read
        back unchanged and verify, and a new record (sealed by a new key) chains onto them."""
        pristine = tmp_path / "pristine.sqlite3"
        shutil.copyfile(OLD_DB, pristine)
        before = raw_records(pristine)
        assert len(before) == OLD_RECORDS and "schema_version" not in tables(pristine)

        store = SQLiteAuditStore(old_db, new_sealer(tmp_path), previous_keys=old_key())
        try:
            assert store.schema_version == NEWEST
            assert versions(old_db) == [(m.version, m.name) for m in SHIPPED]
            assert store.verify().ok and store.verify().checked == OLD_RECORDS
            for decision_id, (seq, request_id, dig, body, case, h, key_id, sig) in before.items():
                r = store.get(decision_id)
                assert r is not None
                assert (r.seq, r.request_id, r.case_digest, r.record_hash) == (
                    seq,
                    request_id or "",
                    dig,
                    h,
                )
                assert (r.key_id, r.signature) == (key_id, sig)
                assert (r.body, r.case) == (json.loads(body), json.loads(case))
            listed = store.list(ListFilter(), 100)
            assert [r.decision_id for r in listed] == list(reversed(before))
            assert listed == [store.get(d) for d in reversed(before)]
            head_hash = before[listed[0].decision_id][5]
            new = store.append(pending(1)).result(timeout=10)
            assert new.seq == OLD_RECORDS + 1 and new.body["prev_hash"] == head_hash
            assert new.key_id == store.sealer.key_id and new.key_id not in old_key()
            v = store.verify()
            assert (v.ok, v.checked) == (True, OLD_RECORDS + 1), v
        finally:
            store.close()
        keys = {**old_key(), store.sealer.key_id: store.sealer.public_raw}
        assert verify_database(old_db, keys).ok
        assert verify_database(old_db, old_key()).reason == "unknown sealing key"

    def test_receipts_issued_before_the_tree_keep_verifying(self, old_db: Path, tmp_path: Path):
        """A receipt the old server gave (its own signature, no tree head) still verifies with
        the old key; after migration the tree covers the old records too, under one head the
        new key signs, and their receipts then carry both seals."""
        from miaopi_client.receipts import verify_receipt

        old_raw = next(iter(old_key().values()))
        rows = raw_records(old_db)
        for _decision_id, (seq, _rid, dig, body, _case, h, key_id, sig) in rows.items():
            b = json.loads(body)
            saved = pb.Decision()
            json_format.ParseDict(b["decision"], saved)
            saved.receipt.CopyFrom(
                pb.Receipt(
                    seq=seq, prev_hash=b["prev_hash"], case_digest=dig, node_id=b["node_id"],
                    window=pb.Window(**b["window"]), record_hash=h, key_id=key_id, signature=sig,
                )
            )  # fmt: skip
            as_saved = json_format.MessageToDict(saved, preserving_proto_field_name=True)
            assert verify_receipt(as_saved, old_raw).ok
        store = SQLiteAuditStore(old_db, new_sealer(tmp_path), previous_keys=old_key())
        try:
            head = store.latest_head()
            assert head is not None and head.tree_size == OLD_RECORDS
            assert head.key_id == store.sealer.key_id
            for decision_id in rows:
                r = store.get(decision_id)
                assert r is not None and r.tree_head == head and r.signature
        finally:
            store.close()

    def test_version_1_is_the_schema_of_before(self, old_db: Path, tmp_path: Path):
        """0001_records.sql creates exactly what the code of ebea569 created."""
        SQLiteAuditStore(
            tmp_path / "fresh.sqlite3", new_sealer(tmp_path), schema=SHIPPED[:1]
        ).close()
        assert schema_of(tmp_path / "fresh.sqlite3") == schema_of(old_db)

    def test_a_real_decision_chains_onto_the_old_trail(self, old_db: Path):
        """A server started on the old state directory serves its decisions and seals new
        ones after them; VerifyAuditTrail passes over both."""
        before = raw_records(old_db)
        settings = Settings(
            listen="127.0.0.1:0",
            rulesets=RULESETS,
            state_dir=old_db.parent,
            previous_seal_keys=(OLD_KEY_PEM,),
        )
        server = LiveServer(settings)
        try:
            with grpc.insecure_channel(server.target) as channel:
                stub = pb_grpc.ApprovalServiceStub(channel)
                for decision_id, row in before.items():
                    got = stub.GetDecision(pb.GetDecisionRequest(decision_id=decision_id))
                    assert got.decision.receipt.seq == row[0]
                    assert got.decision.receipt.record_hash == row[5]
                req = pb.DecideRequest(item_code="GF00012000", materials=SENIOR_MATERIALS)
                json_format.ParseDict(SENIOR, req.facts)
                receipt = stub.Decide(req).decision.receipt
                # Starting on a rule set not archived yet publishes it: that event chains onto
                # the old trail first, and the decision onto the event.
                with sqlite3.connect(f"file:{old_db}?mode=ro", uri=True) as conn:
                    body, event_hash = conn.execute(
                        "SELECT body, hash FROM records WHERE seq = ?", (OLD_RECORDS + 1,)
                    ).fetchone()
                assert json.loads(body)["event"]["type"] == "ruleset_published"
                assert json.loads(body)["prev_hash"] == list(before.values())[-1][5]
                assert receipt.seq == OLD_RECORDS + 2
                assert receipt.prev_hash == event_hash
                v = stub.VerifyAuditTrail(pb.VerifyAuditTrailRequest())
                assert (v.ok, v.checked) == (True, OLD_RECORDS + 2), v
        finally:
            server.stop()

    def test_verify_database_reads_it_without_writing(self, old_db: Path):
        """The offline verifier (`miaopi audit verify --db`) checks an old database as it is:
        the file is byte for byte the same afterwards, no version table added."""
        content = old_db.read_bytes()
        v = verify_database(old_db, old_key())
        assert (v.ok, v.checked) == (True, OLD_RECORDS), v
        assert old_db.read_bytes() == content
        assert "schema_version" not in tables(old_db)


class TestFreshDatabase:
    def test_gets_every_migration_once(self, tmp_path: Path):
        db = tmp_path / "audit.sqlite3"
        store = SQLiteAuditStore(db, new_sealer(tmp_path))
        store.close()
        assert store.schema_version == NEWEST
        assert versions(db) == [(m.version, m.name) for m in SHIPPED]
        with sqlite3.connect(db) as conn:
            stamps = conn.execute("SELECT applied_at FROM schema_version").fetchall()
        assert all(len(t) == 27 and t.endswith("Z") for (t,) in stamps)  # fixed-width UTC
        reopened = SQLiteAuditStore(db, new_sealer(tmp_path))
        reopened.close()
        assert reopened.schema_version == NEWEST
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT applied_at FROM schema_version").fetchall() == stamps


def with_version(db: Path, version: int, name: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO schema_version VALUES (?, ?, '2027-01-01T00:00:00.000000Z')",
            (version, name),
        )


class TestNewerDatabase:
    @pytest.fixture()
    def newer(self, tmp_path: Path) -> Path:
        """A state directory whose audit database a future server has migrated."""
        db = tmp_path / "state" / "audit.sqlite3"
        SQLiteAuditStore(db, new_sealer(tmp_path)).close()
        with_version(db, NEWEST + 1, f"{NEWEST + 1:04d}_from_a_newer_server")
        return db

    def test_store_refuses_it(self, newer: Path, tmp_path: Path):
        content = newer.read_bytes()
        with pytest.raises(AuditSchemaTooNew) as info:
            SQLiteAuditStore(newer, new_sealer(tmp_path))
        assert (info.value.found, info.value.known) == (NEWEST + 1, NEWEST)
        assert f"schema version {NEWEST + 1}" in str(info.value)
        assert f"(version {NEWEST})" in str(info.value) and str(newer) in str(info.value)
        assert newer.read_bytes() == content

    @pytest.mark.parametrize("workers", ["1", "2"])
    def test_server_exits_with_the_message(self, newer: Path, workers: str):
        """`miaopi-server` stops at start with exit code 1 and the reason on stderr; with
        --workers the supervisor's preparation refuses it before any worker starts."""
        proc = subprocess.run(
            [sys.executable, "-m", "miaopi_server.app", "--rulesets", str(RULESETS),
             "--state-dir", str(newer.parent), "--listen", "127.0.0.1:0",
             "--insecure-no-auth", "--log-format", "json", "--workers", workers],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert (
            f"miaopi-server: audit database {newer} is at schema version {NEWEST + 1}, "
            in proc.stderr
        )
        assert f"newer than this server knows (version {NEWEST})" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert "worker.started" not in proc.stderr

    def test_a_different_migration_under_a_known_number_is_refused(self, tmp_path: Path):
        """A database migrated by a diverging build is not written to either."""
        db = tmp_path / "audit.sqlite3"
        SQLiteAuditStore(db, new_sealer(tmp_path)).close()
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE schema_version SET name = '0001_something_else'")
        with pytest.raises(AuditUnavailable, match=r"'0001_something_else'.*'0001_records'"):
            SQLiteAuditStore(db, new_sealer(tmp_path))


def _open_at_once(db: str, key: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    """One process of the concurrent start (module level: spawned processes import it)."""
    sealer = seal.load_or_create(Path(key))[0]
    barrier.wait(timeout=30)
    SQLiteAuditStore(Path(db), sealer, schema=COUNTED).close()


# A second migration that takes a while (long enough for the processes to overlap) and counts
# how often it ran; run twice, its CREATE TABLE would fail as well.
COUNTED = (
    *SHIPPED,
    Migration(
        NEWEST + 1,
        f"{NEWEST + 1:04d}_counted",
        "CREATE TABLE runs (n INTEGER NOT NULL);\n"
        "INSERT INTO runs SELECT count(*) FROM (WITH RECURSIVE c(x) AS"
        " (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) SELECT x FROM c);\n",
    ),
)


def test_concurrent_starts_apply_each_migration_once(tmp_path: Path):
    """Four processes open the same new database at the same moment: every one starts, and
    each migration is applied exactly once."""
    db, key = tmp_path / "audit.sqlite3", tmp_path / "key.pem"
    seal.load_or_create(key)
    spawn = multiprocessing.get_context("spawn")  # no fork of a process running threads
    barrier = spawn.Barrier(4)
    procs = [
        spawn.Process(target=_open_at_once, args=(str(db), str(key), barrier)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert versions(db) == [(m.version, m.name) for m in COUNTED]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT n FROM runs").fetchall() == [(300000,)]


class TestFailingMigration:
    @pytest.fixture()
    def broken(self, tmp_path: Path) -> tuple[Migration, ...]:
        """The shipped migrations and a 0002 whose second statement fails, loaded from a
        folder of their own the way the store loads the shipped ones."""
        folder = tmp_path / "migrations"
        folder.mkdir()
        for m in SHIPPED:
            (folder / f"{m.name}.sql").write_text(m.sql, encoding="utf-8")
        (folder / f"{NEWEST + 1:04d}_broken.sql").write_text(
            "CREATE TABLE review_queue (id INTEGER PRIMARY KEY);\n"
            "INSERT INTO no_such_table VALUES (1);\n",
            encoding="utf-8",
        )
        (folder / "README").write_text("not a migration", encoding="utf-8")
        return migrations.load(folder)

    def test_fresh_database_stays_at_the_version_before(self, tmp_path: Path, broken):
        db = tmp_path / "audit.sqlite3"
        with pytest.raises(AuditUnavailable) as info:
            SQLiteAuditStore(db, new_sealer(tmp_path), schema=broken)
        message = str(info.value)
        assert f"{NEWEST + 1:04d}_broken failed" in message and "no such table" in message
        assert f"stays at version {NEWEST}" in message
        assert versions(db) == [(m.version, m.name) for m in SHIPPED]
        assert "review_queue" not in tables(db)
        store = SQLiteAuditStore(db, new_sealer(tmp_path))  # the shipped code still opens it
        try:
            assert store.append(pending(1)).result(timeout=10).seq == 1
        finally:
            store.close()

    def test_old_database_is_left_as_it_was(self, old_db: Path, tmp_path: Path, broken):
        """The shipped migrations apply, each in its own transaction; the broken one after
        them changes nothing, and the database stays at the shipped version."""
        with pytest.raises(AuditUnavailable, match="_broken failed"):
            SQLiteAuditStore(old_db, new_sealer(tmp_path), previous_keys=old_key(), schema=broken)
        assert versions(old_db) == [(m.version, m.name) for m in SHIPPED]
        assert "review_queue" not in tables(old_db)
        store = SQLiteAuditStore(old_db, new_sealer(tmp_path), previous_keys=old_key())
        try:
            assert store.schema_version == NEWEST
            assert store.verify().checked == OLD_RECORDS and store.verify().ok
        finally:
            store.close()


class TestLoader:
    def test_shipped_migrations_come_from_the_package(self):
        assert SHIPPED[0].name == "0001_records"
        assert "CREATE TABLE records" in SHIPPED[0].sql
        assert [m.version for m in SHIPPED] == list(range(1, len(SHIPPED) + 1))

    @pytest.mark.parametrize(
        ("names", "problem"),
        [
            (["0001_records.sql", "0003_gap.sql"], "number 3, expected 2"),
            (["0001_records.sql", "0001_again.sql"], "number 1, expected 2"),
            (["0002_first.sql"], "number 2, expected 1"),
            (["0001_records.sql", "2_short.sql"], "'2_short.sql' is not named NNNN_name.sql"),
        ],
    )
    def test_badly_numbered_folders_are_refused(self, tmp_path: Path, names, problem):
        for name in names:
            (tmp_path / name).write_text("SELECT 1;", encoding="utf-8")
        with pytest.raises(ValueError, match=problem):
            migrations.load(tmp_path)

    def test_statements_split_only_where_a_statement_ends(self):
        sql = (
            "-- leading comment; with a semicolon\n"
            "CREATE TABLE t (a TEXT DEFAULT 'x;y');\n"
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 'z'; END;\n"
            "-- trailing comment\n"
        )
        got = statements(sql)
        assert len(got) == 3
        assert got[0].endswith("DEFAULT 'x;y');")
        assert got[1].startswith("CREATE TRIGGER") and got[1].endswith("END;")
        assert got[2] == "-- trailing comment"
        conn = sqlite3.connect(":memory:")
        for s in got:
            conn.execute(s)
        conn.execute("INSERT INTO t VALUES ('q')")
        assert conn.execute("SELECT a FROM t").fetchall() == [("z",)]


class TestAlertsRebuilt:
    def test_0009_keeps_every_alert_and_its_seq(self, tmp_path: Path):
        """Migration 0009 rebuilds the alerts table (a UNIQUE key cannot change in place):
        the alerts a version-7 database raised keep their seq (the stream's cursor), a
        scheduler alert is still refused twice, and new ones continue after the highest seq
        ever given (AUTOINCREMENT), not after the highest left."""
        db = tmp_path / "audit.sqlite3"
        store = SQLiteAuditStore(db, new_sealer(tmp_path), schema=SHIPPED[:7])
        store.close()
        insert = (
            "INSERT INTO alerts (decision_id, kind, item_code, department, jurisdiction,"
            " due_on, raised_at) VALUES (?, 'due_soon', 'I', '部门', '440605', '', 't')"
        )
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            for d in ("d1", "d2", "d3"):
                conn.execute(insert, (d,))
            conn.execute("DELETE FROM alerts WHERE decision_id = 'd3'")
        store = SQLiteAuditStore(db, new_sealer(tmp_path))
        try:
            assert store.schema_version == NEWEST
            assert [(a.seq, a.decision_id) for a in store.alerts_after(0, "", 10)] == [
                (1, "d1"),
                (2, "d2"),
            ]
        finally:
            store.close()
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute(insert, ("d1",))
            assert conn.execute(insert, ("d4",)).lastrowid == 4
