"""Automatic lapse: the scheduler lapses a 容缺 supplement task once its due day has ended
(Asia/Shanghai), as a transition by the actor `system`, exactly once with `--workers 2` and
across a restart; its `supplement_overdue` alert is raised as before; the trail verifies."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import threading
import time
from pathlib import Path

import grpc
import pytest

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_client.cli import main
from miaopi_server.audit import seal
from miaopi_server.settings import Settings
from tests.casework_support import opened_long_ago, stored_alerts, wait_until
from tests.conftest import LiveServer, ServerProcess
from tests.support import BUSINESS, BUSINESS_MATERIALS, RULESETS, decide_request, with_facts


def supplement_case(target: str) -> str:
    facts = with_facts(BUSINESS, business__composition="family", business__family_members=["黄明"])
    with grpc.insecure_channel(target) as ch:
        d = (
            pb_grpc.ApprovalServiceStub(ch)
            .Decide(decide_request("XK00051000", facts, BUSINESS_MATERIALS))
            .decision
        )
    assert d.outcome == pb.OUTCOME_APPROVE
    return str(d.decision_id)


def lapses(db: Path) -> list[tuple[str, str, str, str]]:
    t = "json_extract(body, '$.transition.{}')".format
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            f"SELECT {t('decision_id')}, {t('by')}, {t('from')}, {t('to')} FROM records"
            f" WHERE kind = 'transition' AND {t('action')} = 'lapse' ORDER BY seq"
        ).fetchall()


def state_of(db: Path, decision_id: str) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute("SELECT state FROM tasks WHERE decision_id = ?", (decision_id,))
        return str(row.fetchone()[0])


def test_overdue_supplements_lapse_once_across_workers_and_restarts(tmp_path: Path) -> None:
    state, db = tmp_path / "state", tmp_path / "state" / "audit.sqlite3"
    first = LiveServer(
        Settings(
            listen="127.0.0.1:0",
            rulesets=RULESETS,
            state_dir=state,
            watch_seconds=0,
            alert_interval_seconds=0,
        )
    )
    late, fresh = supplement_case(first.target), supplement_case(first.target)
    first.stop()
    opened_long_ago(db, late)  # its materials were due in June 2025; the server was down

    two = ServerProcess(
        RULESETS, state, "--watch", "0", "--workers", "2", "--alert-interval", "0.1"
    )
    try:
        wait_until(lambda: state_of(db, late) == "lapsed")
        time.sleep(1.0)  # many more passes of both processes' schedulers
        assert lapses(db) == [(late, "system", "supplement_pending", "lapsed")]
        assert state_of(db, fresh) == "supplement_pending"  # not due yet
        assert stored_alerts(db) == [(late, "supplement_overdue")]
        logged = [e for e in two.events if e["event"] == "task.lapsed"]
        assert len(logged) == 1 and logged[0]["decision_id"] == late
        assert logged[0]["due_on"] == "2025-06-09"  # 5 working days after Mon 2 June 2025
    finally:
        two.signal(signal.SIGTERM)
        two.wait()

    again = ServerProcess(RULESETS, state, "--watch", "0", "--alert-interval", "0.1")
    try:
        time.sleep(1.0)
        assert len(lapses(db)) == 1 and not [e for e in again.events if e["event"] == "task.lapsed"]
    finally:
        again.signal(signal.SIGTERM)
        again.wait()
    sealer, _ = seal.load_or_create(state / "seal_ed25519.pem")
    pem = tmp_path / "seal.pub.pem"
    pem.write_text(sealer.public_pem, "utf-8")
    assert main(["audit", "verify", "--db", str(db), "--key", str(pem)]) == 0


def test_closing_the_store_waits_for_a_read_still_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scheduler pass keeps reading in its thread after its task is cancelled at stop: the
    store closes its reader only once that read is done (closing under a running statement
    crashed the process)."""
    from miaopi_server.audit import chainstore
    from miaopi_server.audit.sqlite import SQLiteAuditStore

    store = SQLiteAuditStore(tmp_path / "audit.sqlite3", seal.load_or_create(tmp_path / "k")[0])
    reading, release = threading.Event(), threading.Event()
    real = chainstore.pending_supplements

    def slow(conn: object) -> object:  # a long pass, holding the reader
        reading.set()
        assert release.wait(20)
        return real(conn)  # type: ignore[arg-type]

    monkeypatch.setattr(chainstore, "pending_supplements", slow)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(store.pending_supplements()))
    reader.start()
    assert reading.wait(20)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(0.5)
    assert closer.is_alive()  # waiting for the read, not closing under it
    release.set()
    reader.join(20)
    closer.join(20)
    assert got == [[]] and not closer.is_alive()
