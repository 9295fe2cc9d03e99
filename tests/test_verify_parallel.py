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
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest

from miaopi_server.audit import seal
from miaopi_server.audit.seal import key_id_of, public_key_from_pem
from miaopi_server.audit.sqlite import SQLiteAuditStore, verify_database
from miaopi_server.audit.sqlite_verify_pool import PARALLEL_MIN_RECORDS, worker_count
from miaopi_server.audit.store import Verification
from miaopi_server.audit.witness import read_witness, witness_path
from tests.support import pending

RECORDS = 1_200  # the tamper tests' trail, checked by 2 and 3 workers as asked
BIG = 2 * PARALLEL_MIN_RECORDS + 40  # a trail the command itself splits (on 2 cores or more)


def _make_trail(directory: Path, records: int, per_commit: int) -> tuple[Path, dict[str, bytes]]:
    sealer, _ = seal.load_or_create(directory / "key.pem")
    (directory / "seal.pub.pem").write_text(sealer.public_pem, encoding="utf-8")
    store = SQLiteAuditStore(directory / "audit.sqlite3", sealer)
    try:
        for start in range(1, records + 1, per_commit):
            group: list[Future[object]] = [
                store.append(pending(i)) for i in range(start, min(start + per_commit, records + 1))
            ]
            for f in group:
                f.result()
    finally:
        store.close()
    return directory / "audit.sqlite3", {sealer.key_id: sealer.public_raw}


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    return _make_trail(tmp_path_factory.mktemp("trail"), RECORDS, 7)  # heads in every range


@pytest.fixture(scope="module")
def big_trail(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    return _make_trail(tmp_path_factory.mktemp("big"), BIG, 250)


def _copy(trail: tuple[Path, dict[str, bytes]], tmp_path: Path) -> Path:
    db = tmp_path / "audit.sqlite3"
    shutil.copy(trail[0], db)
    shutil.copy(witness_path(trail[0]), witness_path(db))
    return db


# Workers are forked: from a process of their own, without the threads this test process may
# hold (servers and stores of other tests), as the CLI forks them.
_COMPARE = """
import dataclasses, json, sys
from pathlib import Path
from miaopi_server.audit.sqlite import verify_database
from miaopi_server.audit.sqlite_verify_pool import verify_in_workers
from miaopi_server.audit.witness import read_witness, witness_path
db, key_id, key, first, last = Path(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
keys = {key_id: key}
witness = read_witness(witness_path(db))
found = [verify_database(db, keys, first, last, witness)]
found += [verify_in_workers(db, keys, first, last, witness, n) for n in (2, 3)]
print(json.dumps([dataclasses.asdict(v) for v in found]))
"""


def _both_agree(db: Path, keys: dict[str, bytes], from_seq: int = 1, to_seq: int = 0):
    """One process's Verification, checked equal to two and to three workers'."""
    ((key_id, key),) = keys.items()
    done = subprocess.run(
        [sys.executable, "-c", _COMPARE, str(db), key_id, key.hex(), str(from_seq), str(to_seq)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    one, two, three = (Verification(**v) for v in json.loads(done.stdout))
    assert two == one and three == one, (one, two, three)
    return one


def _worker_count_alone(records: int) -> int:
    """worker_count in a process without threads, as the CLI calls it (this one may hold
    other tests' threads, and then forks none)."""
    code = (
        "import sys; from miaopi_server.audit.sqlite_verify_pool import worker_count;"
        " print(worker_count(int(sys.argv[1])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(records)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_a_sound_trail_is_split_and_verifies(big_trail):
    db, keys = big_trail
    assert _worker_count_alone(BIG) >= 2 if _cores() >= 2 else _worker_count_alone(BIG) == 0
    assert _worker_count_alone(PARALLEL_MIN_RECORDS - 1) == 0  # a small trail: one process
    result = _both_agree(db, keys)
    assert (result.ok, result.checked) == (True, BIG)
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
    _both_agree(db, trail[1], 200, RECORDS - 100)


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


BIG_SECOND = BIG * 3 // 4


def test_the_command_checks_in_workers_and_prints_what_one_process_finds(big_trail, tmp_path):
    """A trail this size is split by the command itself, which prints what one process finds."""
    db = _copy(big_trail, tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE records SET outcome = 'REJECT' WHERE seq = ?", (BIG_SECOND,))
    conn.close()
    witness = read_witness(witness_path(db))
    one = verify_database(db, big_trail[1], witness=witness)
    pem = big_trail[0].parent / "seal.pub.pem"
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
        "first_bad_seq": BIG_SECOND,
        "reason": "indexed columns disagree with the record",
        "purged": 0,
    }


def test_purged_cases_are_counted_across_the_ranges(trail, tmp_path):
    """After a purge (decisions of both ranges lose their cases), the purged count is summed
    over the ranges, up to a record's own problem; a missing case reports 0 as one process
    does."""
    db = _copy(trail, tmp_path)
    sealer, _ = seal.load_or_create(trail[0].parent / "key.pem")
    store = SQLiteAuditStore(db, sealer)
    try:
        store.purge("2026-11-23T00:15:00.000000Z", "test")  # pending(i) is at 00:00:00 + i s
    finally:
        store.close()
    sound = _both_agree(db, trail[1])
    # i < 900, in both ranges; the purge event is a record too
    assert (sound.ok, sound.checked, sound.purged) == (True, RECORDS + 1, 899)
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE records SET outcome = 'REJECT' WHERE seq = {SECOND}")
    conn.close()
    found = _both_agree(db, trail[1])
    assert (found.first_bad_seq, found.reason) == (
        SECOND,
        "indexed columns disagree with the record",
    )
    assert found.purged == 899  # all before SECOND (900), in the first range and the second
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE records SET outcome = 'APPROVE' WHERE seq = {SECOND}")
        conn.execute(f"DELETE FROM cases WHERE seq = {SECOND + 5}")  # a case that was kept
    conn.close()
    missing = _both_agree(db, trail[1])
    assert (missing.first_bad_seq, missing.reason, missing.purged) == (
        SECOND + 5,
        "case missing, and no purge covers it",
        0,
    )


def test_no_workers_are_forked_while_threads_run():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert worker_count(BIG) == 0  # a forked child could inherit a lock the thread holds
    finally:
        stop.set()
        thread.join()


def test_a_trail_from_before_the_tree_verifies_in_workers(tmp_path):
    """A schema-0 trail (no tree_heads table) checked by workers, as one process checks it:
    the workers have no heads to check (they once queried the missing table)."""
    data = Path(__file__).parent / "data"
    db = tmp_path / "audit.sqlite3"
    shutil.copy(data / "audit-v0-ebea569.sqlite3", db)
    raw = public_key_from_pem((data / "audit-v0-ebea569.seal.pub.pem").read_text("utf-8"))
    result = _both_agree(db, {key_id_of(raw): raw})
    assert result.ok and result.checked > 0
