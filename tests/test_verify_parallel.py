"""`miaopi audit verify --db` in worker processes (audit/sqlite_verify_pool.py) answers what
one process answers: on a sound trail, and on every kind of tamper the audit tests make, put
in the second worker's range, at a range's edge or in the tree, the same ok, checked count,
first bad seq, reason and purged count."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest

from miaopi_server.audit import seal
from miaopi_server.audit.sqlite import SQLiteAuditStore, verify_database
from miaopi_server.audit.sqlite_verify_pool import (
    PARALLEL_MIN_RECORDS,
    verify_in_workers,
    worker_count,
)
from miaopi_server.audit.witness import read_witness, witness_path
from tests.support import pending

RECORDS = 2 * PARALLEL_MIN_RECORDS + 40  # two workers take it on two cores
PER_COMMIT = 50  # so the heads are many, in every range


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    directory = tmp_path_factory.mktemp("trail")
    sealer, _ = seal.load_or_create(directory / "key.pem")
    (directory / "seal.pub.pem").write_text(sealer.public_pem, encoding="utf-8")
    store = SQLiteAuditStore(directory / "audit.sqlite3", sealer)
    try:
        for start in range(1, RECORDS + 1, PER_COMMIT):
            group: list[Future[object]] = [
                store.append(pending(i)) for i in range(start, min(start + PER_COMMIT, RECORDS + 1))
            ]
            for f in group:
                f.result()
    finally:
        store.close()
    return directory / "audit.sqlite3", {sealer.key_id: sealer.public_raw}


def _copy(trail: tuple[Path, dict[str, bytes]], tmp_path: Path) -> Path:
    db = tmp_path / "audit.sqlite3"
    shutil.copy(trail[0], db)
    shutil.copy(witness_path(trail[0]), witness_path(db))
    return db


def _both_agree(db: Path, keys: dict[str, bytes], from_seq: int = 1, to_seq: int = 0):
    witness = read_witness(witness_path(db))
    one = verify_database(db, keys, from_seq, to_seq, witness)
    for workers in (2, 3):
        assert verify_in_workers(db, keys, from_seq, to_seq, witness, workers) == one, workers
    return one


def test_a_sound_trail_is_split_and_verifies(trail):
    db, keys = trail
    assert worker_count(RECORDS) >= 1 if _cores() >= 2 else worker_count(RECORDS) == 0
    assert worker_count(PARALLEL_MIN_RECORDS - 1) == 0  # a small trail: one process
    result = _both_agree(db, keys)
    assert (result.ok, result.checked) == (True, RECORDS)
    part = _both_agree(db, keys, 3000, 9000)
    assert (part.ok, part.checked) == (True, 6001)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


SECOND = RECORDS * 3 // 4  # inside the second of two ranges
EDGE = RECORDS // 2  # the last record of the first of two ranges (1 + RECORDS // 2 - 1)


def _sql(*statements: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        for s in statements:
            conn.execute(s)

    return run


def _respaced(seq: int) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        text = conn.execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()[0]
        spaced = json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
        conn.execute("UPDATE records SET body = ? WHERE seq = ?", (spaced, seq))

    return run


TAMPERS = {
    "body changed": _sql(
        f"UPDATE records SET body = replace(body, '\"T1\"', '\"T2\"') WHERE seq = {SECOND}"
    ),
    "not canonical": _respaced(SECOND),
    "hash changed": _sql(f"UPDATE records SET hash = hex(zeroblob(32)) WHERE seq = {SECOND}"),
    "column changed": _sql(f"UPDATE records SET outcome = 'REJECT' WHERE seq = {SECOND}"),
    "case changed": _sql(
        f"UPDATE cases SET case_json = replace(case_json, '\"n\"', '\"m\"') WHERE seq = {SECOND}"
    ),
    "case removed": _sql(f"DELETE FROM cases WHERE seq = {SECOND}"),
    "record removed": _sql(f"DELETE FROM records WHERE seq = {SECOND}"),
    "first range's end removed": _sql(f"DELETE FROM records WHERE seq IN ({EDGE}, {EDGE - 1})"),
    "second range's start removed": _sql(f"DELETE FROM records WHERE seq = {EDGE + 1}"),
    "the end removed": _sql(f"DELETE FROM records WHERE seq > {RECORDS - 30}"),
    "head signature": _sql(
        f"UPDATE tree_heads SET signature = X'00' WHERE tree_size = "
        f"(SELECT MIN(tree_size) FROM tree_heads WHERE tree_size > {SECOND})"
    ),
    "two head signatures": _sql(
        "UPDATE tree_heads SET signature = X'00' WHERE tree_size IN "
        f"((SELECT MIN(tree_size) FROM tree_heads WHERE tree_size > {SECOND}),"
        f" (SELECT MIN(tree_size) FROM tree_heads WHERE tree_size > {EDGE // 2}))"
    ),
    "head root before a bad signature": _sql(
        f"UPDATE tree_heads SET signature = X'00' WHERE tree_size = "
        f"(SELECT MIN(tree_size) FROM tree_heads WHERE tree_size > {SECOND})",
        f"UPDATE tree_heads SET root_hash = hex(zeroblob(32)) WHERE tree_size = "
        f"(SELECT MIN(tree_size) FROM tree_heads WHERE tree_size > {EDGE // 2})",
    ),
    "bad signature before a bad node": _sql(
        f"UPDATE tree_heads SET signature = X'00' WHERE tree_size = "
        f"(SELECT MIN(tree_size) FROM tree_heads WHERE tree_size > {EDGE // 2})",
        f"UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = {SECOND // 2}",
    ),
    "tree node": _sql(
        f"UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = {SECOND // 2}"
    ),
    "heads and nodes removed at the end": _sql(
        f"DELETE FROM tree_heads WHERE tree_size > {RECORDS - 200}",
    ),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_a_tamper_is_reported_as_one_process_reports_it(trail, tmp_path, tamper):
    db = _copy(trail, tmp_path)
    with sqlite3.connect(db) as conn:
        TAMPERS[tamper](conn)
    conn.close()
    result = _both_agree(db, trail[1])
    assert not result.ok, tamper
    _both_agree(db, trail[1], 2000, RECORDS - 100)


def test_the_record_problem_in_the_second_range_is_the_first_reported(trail, tmp_path):
    """A tamper in the second range, with the first sound: the second worker's finding, with
    the first range's records counted as checked."""
    db = _copy(trail, tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE records SET body = replace(body, '\"T1\"', '\"T2\"') WHERE seq = ?", (SECOND,)
        )
    conn.close()
    result = _both_agree(db, trail[1])
    assert (result.ok, result.first_bad_seq, result.reason, result.checked) == (
        False,
        SECOND,
        "hash mismatch",
        SECOND - 1,
    )


def test_the_command_checks_in_workers_and_prints_what_one_process_finds(trail, tmp_path):
    db = _copy(trail, tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE records SET outcome = 'REJECT' WHERE seq = ?", (SECOND,))
    conn.close()
    witness = read_witness(witness_path(db))
    one = verify_database(db, trail[1], witness=witness)
    pem = trail[0].parent / "seal.pub.pem"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "miaopi_client.cli",
            "audit",
            "verify",
            "--db",
            str(db),
            "--key",
            str(pem),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout) == {
        "ok": False,
        "checked": one.checked,
        "first_bad_seq": SECOND,
        "reason": "indexed columns disagree with the record",
        "purged": 0,
    }


def test_purged_cases_are_counted_across_the_ranges(trail, tmp_path):
    """After a purge (decisions of every range lose their cases), the purged count is summed
    over the ranges, up to a record's own problem; a gap or a missing case reports 0 as one
    process does."""
    db = _copy(trail, tmp_path)
    sealer, _ = seal.load_or_create(trail[0].parent / "key.pem")
    store = SQLiteAuditStore(db, sealer)
    try:
        # Decisions at 00:00:00-29 (pending(i) wraps each hour): i = 1-29, 3600-3629, 7200-7229
        store.purge("2026-11-23T00:00:30.000000Z", "test")
    finally:
        store.close()
    sound = _both_agree(db, trail[1])
    assert (sound.ok, sound.checked, sound.purged) == (
        True,
        RECORDS + 1,
        89,
    )  # 29 + 30 + 30; the purge event is a record too
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE records SET outcome = 'REJECT' WHERE seq = {SECOND}")
    conn.close()
    found = _both_agree(db, trail[1])
    assert (found.first_bad_seq, found.reason) == (
        SECOND,
        "indexed columns disagree with the record",
    )
    assert found.purged == 89  # the first range's and the second's before SECOND
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE records SET outcome = 'APPROVE' WHERE seq = {SECOND}")
        conn.execute(
            f"DELETE FROM cases WHERE seq = (SELECT MAX(seq) FROM cases WHERE seq < {SECOND})"
        )
    conn.close()
    missing = _both_agree(db, trail[1])
    assert (missing.reason, missing.purged) == ("case missing, and no purge covers it", 0)
