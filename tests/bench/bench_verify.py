"""Offline `miaopi audit verify`: records per second on a trail of 60,000 decisions.

The trail is made by the product's own recording path: generated cases over the four items
(tests/case_generator.mixed) decided by `catalog.decide`, recorded by `audit.Recorder` into a
`SQLiteAuditStore` nine at a time (about the records per commit the RPC bench sees at peak,
so about one signed tree head per nine records), with its witness file beside it. Built once
per run (not timed) and kept under build/bench/verify/.

Timed: the whole command, process start to exit (its CPU too, worker processes included;
a trail this size is checked by one worker process per core),
`miaopi audit verify --db audit.sqlite3 --key seal.pub.pem` (every record's chain, canonical
form, hash, case digest and indexed columns; every stored tree node; every signed head's root
and signature; the witness). It must print that the trail verified with every record checked.

    .venv/bin/python -m tests.bench.bench_verify [--records N] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import profiles
from .common import PY, ROOT, RULESETS, TODAY, WORK, env, log, median

N_RECORDS = 60_000
PER_COMMIT = 9


def build_trail(directory: Path, n: int = N_RECORDS) -> tuple[Path, Path]:
    """(database, public key PEM) of a fresh trail of n decision records (plus the start's
    records, if any)."""
    from miaopi_server.audit import seal
    from miaopi_server.audit.recorder import Decided, Recorder
    from miaopi_server.audit.sqlite import SQLiteAuditStore
    from miaopi_server.decision.catalog import load_catalog
    from tests.case_generator import mixed

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    sealer, _ = seal.load_or_create(directory / "seal.pem")
    pem = directory / "seal.pub.pem"
    pem.write_text(sealer.public_pem, encoding="utf-8")
    db = directory / "audit.sqlite3"
    store = SQLiteAuditStore(db, sealer)
    catalog = load_catalog(RULESETS)
    recorder = Recorder(store, "bench-node")
    window = {"window_id": "w-bench", "operator_id": "op-1", "principal_id": "window:w-bench"}
    import datetime as dt
    import uuid

    async def one(code: str, facts: dict[str, Any], materials: list[str]) -> None:
        def make() -> Decided:
            d = catalog.decide(code, facts, materials, TODAY)
            return Decided(d, str(uuid.uuid4()), dt.datetime.now(dt.UTC))

        case = {"item_code": code, "facts": facts, "materials": materials}
        await recorder.decide("", case, window, make)

    async def all_cases() -> None:
        group: list[Any] = []
        for code, facts, materials in mixed(n, seed=7):
            group.append(one(code, facts, materials))
            if len(group) == PER_COMMIT:
                await asyncio.gather(*group)
                group = []
        await asyncio.gather(*group)

    try:
        asyncio.run(all_cases())
    finally:
        store.close()
    return db, pem


def _timed(cmd: list[str], records: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the command, its worker processes' CPU included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=900)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    result = json.loads(done.stdout) if done.returncode == 0 else {}
    if not result.get("ok") or result.get("checked", 0) < records:
        raise RuntimeError(f"{' '.join(cmd)} -> {done.returncode}\n{done.stdout}\n{done.stderr}")
    return wall, cpu


def run(runs: int = 3, records: int = N_RECORDS) -> dict[str, Any]:
    from miaopi_server.audit.sqlite_verify_pool import worker_count

    miaopi = str(Path(PY).with_name("miaopi"))
    directory = WORK / "verify"
    t0 = time.perf_counter()
    db, pem = build_trail(directory, records)
    build_seconds = time.perf_counter() - t0
    heads = _count(db, "SELECT COUNT(*) FROM tree_heads")
    total = _count(db, "SELECT COUNT(*) FROM records")
    cmd = [miaopi, "audit", "verify", "--db", str(db), "--key", str(pem), "--json"]
    walls, cpus = [], []
    for r in range(runs):
        wall, cpu = _timed(cmd, records)
        walls.append(wall)
        cpus.append(cpu)
        rate = total / wall
        log(f"audit verify run {r + 1}: {wall:.2f} s ({rate:,.0f} records/s), CPU {cpu:.2f} s")
    wall = median(walls)
    return {
        "records": total,
        "signed_heads": heads,
        "database_mb": round(db.stat().st_size / 2**20, 1),
        "build_seconds": round(build_seconds, 1),
        "seconds": {"median": wall, "runs": walls},
        "cpu_seconds": {"median": median(cpus), "runs": cpus},
        "records_per_second": total / wall,
        "workers": worker_count(total),
        "parts_cpu_seconds": _parts(db, pem),
        "command": " ".join(c.replace(str(ROOT) + "/", "") for c in cmd),
        "profile": _profile(db, pem),
    }


def _count(db: Path, sql: str) -> int:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def _parts(db: Path, pem: Path) -> dict[str, float]:
    """CPU seconds of each part of the check, one process each (what the workers share):
    the record pass, the tree pass without signatures, the heads' signatures."""
    from miaopi_server.audit.sqlite_verify import (
        check_range,
        connect_readonly,
        first_bad_head,
        tree_pass,
    )
    from miaopi_server.offline import key_id_of, public_key_from_pem, read_witness, witness_path

    raw = public_key_from_pem(pem.read_text(encoding="utf-8"))
    keys = {key_id_of(raw): raw}
    witness = read_witness(witness_path(db))
    conn = connect_readonly(db)
    try:
        conn.execute("BEGIN")
        (last,) = conn.execute("SELECT MAX(seq) FROM records").fetchone()
        parts = {
            "records": lambda: check_range(conn, keys, 1, 0, last),
            "tree": lambda: tree_pass(conn, keys, witness, signatures=False),
            "signatures": lambda: first_bad_head(conn, keys, 1, last),
        }
        out = {}
        for name, part in parts.items():
            t0 = time.process_time()
            part()
            out[name] = round(time.process_time() - t0, 3)
        return out
    finally:
        conn.close()


def _profile(db: Path, pem: Path) -> dict[str, Any]:
    """cProfile of verify_database, the command's own work."""
    from miaopi_server.offline import key_id_of, public_key_from_pem, verify_database

    raw = public_key_from_pem(pem.read_text(encoding="utf-8"))

    def work() -> None:
        assert verify_database(db, {key_id_of(raw): raw}, witness=None).ok

    return profiles.cprofile(work)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=N_RECORDS)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    out = run(args.runs, args.records)
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
