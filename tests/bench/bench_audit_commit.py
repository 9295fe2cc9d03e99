"""Audit append throughput, one Ed25519 signature per record (a given older commit) against
one signed tree head per group commit (this tree), side by side in one run.

    .venv/bin/python tests/bench/bench_audit_commit.py [--base main] [--records 20000]

The base commit's server package is exported (git archive) to a scratch directory and run
from there; each measurement is a fresh process and a fresh database: `--threads` callers,
each appending a record and waiting for it to be durable (what a Decide does), as fast as
they can. Rounds alternate old/new. Prints records/s and records per commit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORKLOAD = r"""
import json, sys, tempfile, threading, time
from pathlib import Path
from miaopi_server.audit import seal
from miaopi_server.audit.canonical import canonical
from miaopi_server.audit.record import PendingRecord, case_canonical, case_digest
from miaopi_server.audit.sqlite import SQLiteAuditStore
import miaopi_server

records, threads = int(sys.argv[1]), int(sys.argv[2])
cpu = [0.0]  # the writer thread's CPU time in _write_batch: fsync waits and the scheduler excluded
write_batch = SQLiteAuditStore._write_batch
def timed(self, batch):
    started = time.thread_time()
    try:
        return write_batch(self, batch)
    finally:
        cpu[0] += time.thread_time() - started
SQLiteAuditStore._write_batch = timed
state = Path(tempfile.mkdtemp())
store = SQLiteAuditStore(state / "audit.sqlite3", seal.load_or_create(state / "k.pem")[0])

def record(i):
    facts = {"applicant": {"name": "陈建国", "id_number": "440605195001011234"}, "n": i}
    case = {"item_code": "GF00012000", "facts": facts, "materials": ["id_card"]}
    when = "2026-11-23T00:00:00.000000Z"
    decision = {"decision_id": f"d{i}", "item_code": "GF00012000",
                "outcome": "OUTCOME_APPROVE", "decided_at": "2026-11-23T00:00:00Z",
                "outputs": {"monthly_amount": 30.0}}
    return PendingRecord(f"d{i}", "", "GF00012000", "APPROVE", "w1", when, case,
                         case_canonical("GF00012000", facts, ["id_card"]),
                         case_digest("GF00012000", facts, ["id_card"]),
                         {"window_id": "w1", "operator_id": "op", "principal_id": "p"},
                         "node", canonical(decision))

per = records // threads
def caller(t):
    for i in range(per):
        store.append(record(t * per + i)).result()

started = time.perf_counter()
workers = [threading.Thread(target=caller, args=(t,)) for t in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
elapsed = time.perf_counter() - started
ok = store.verify().ok
store.close()
print(json.dumps({"rate": per * threads / elapsed, "ok": ok, "code": miaopi_server.__file__,
                  "per_commit": store.records_written / store.batches,
                  "cpu_us": cpu[0] / store.records_written * 1e6}))
"""


def export(commit: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "server/miaopi_server", "proto/miaopi"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def measure(pythonpath: str, records: int, threads: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    out = subprocess.run(
        [sys.executable, "-c", WORKLOAD, str(records), str(threads)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", default="main", help="commit with one signature per record")
    p.add_argument("--records", type=int, default=20000)
    p.add_argument("--threads", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        old = Path(scratch)
        export(args.base, old)
        paths = {
            f"per record ({args.base})": f"{old / 'server'}:{old / 'proto'}",
            "per commit (this tree)": f"{ROOT / 'server'}:{ROOT / 'proto'}",
        }
        results: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, path in paths.items():
                results[name].append(measure(path, args.records, args.threads))
    for name, runs in results.items():
        rates = sorted(r["rate"] for r in runs)
        per_commit = sorted(r["per_commit"] for r in runs)
        cpu = sorted(r["cpu_us"] for r in runs)
        print(
            f"{name:28} {rates[len(rates) // 2]:6.0f} records/s (runs "
            + ", ".join(f"{r:.0f}" for r in rates)
            + f"); writer CPU {cpu[len(cpu) // 2]:.0f} us/record (runs "
            + ", ".join(f"{c:.0f}" for c in cpu)
            + f"); {per_commit[len(per_commit) // 2]:.1f} records/commit; verified "
            + str(all(r["ok"] for r in runs))
        )
        assert all(str(ROOT) not in str(r["code"]) for r in runs) or "this tree" in name


if __name__ == "__main__":
    main()
