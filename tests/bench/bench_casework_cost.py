"""The cost casework adds to one decision (`python -m tests.bench.bench_casework_cost`, from
the repository root): the opener in the request (nothing for a case the rules close at once;
open_task + the task's JSON for a review) and the tasks row in the writer's batch (appends of
decisions without and with a task, in batches of 1, 16 and 64)."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from miaopi_server.audit import seal
from miaopi_server.audit.recorder import Decided
from miaopi_server.audit.sqlite import SQLiteAuditStore
from miaopi_server.casework.codec import task_to_json
from miaopi_server.casework.model import Task
from miaopi_server.decision.catalog import load_catalog
from miaopi_server.edge.opener import CaseOpener
from miaopi_server.ops.reload import CatalogHolder
from tests.support import CENTENARIAN, RULESETS, SENIOR, SENIOR_MATERIALS, pending, resident_id

N = 20000
WINDOW = {"window_id": "W", "principal_id": "anonymous", "operator_id": ""}
AS_OF = dt.date(2026, 11, 20)


def per_call_us(fn: object, n: int = N) -> float:
    assert callable(fn)
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def append_us(task: Task | None, batch: int, total: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteAuditStore(Path(tmp) / "a.sqlite3", seal.load_or_create(Path(tmp) / "k")[0])
        records = [pending(i) for i in range(total)]
        if task is not None:
            records = [
                dataclasses.replace(
                    r, task=(t := dataclasses.replace(task, decision_id=r.decision_id)),
                    task_json=task_to_json(t),
                )
                for r in records
            ]  # fmt: skip
        started = time.perf_counter()
        for k in range(0, total, batch):
            for f in [store.append(r) for r in records[k : k + batch]]:
                f.result()
        elapsed = time.perf_counter() - started
        store.close()
        return elapsed / total * 1e6


def main() -> None:
    catalog = load_catalog(RULESETS)
    opener = CaseOpener(CatalogHolder(RULESETS, catalog, 5), None)
    now = dt.datetime.now(dt.UTC)
    approved = Decided(catalog.decide("GF00012000", SENIOR, SENIOR_MATERIALS, AS_OF), "d1", now)
    facts = copy.deepcopy(CENTENARIAN)
    facts["applicant"]["id_number"] = resident_id("1915-06-01")
    review = Decided(catalog.decide("GF00012000", facts, SENIOR_MATERIALS, AS_OF), "d2", now)
    assert opener(approved, WINDOW) is None and review.decision.outcome == "MANUAL_REVIEW"
    print(f"approve: opener {per_call_us(lambda: opener(approved, WINDOW)):.2f} us/decision")
    cost = per_call_us(lambda: task_to_json(opener(review, WINDOW)))  # type: ignore[arg-type]
    print(f"manual review: opener + task JSON {cost:.1f} us/decision")
    decide = per_call_us(
        lambda: catalog.decide("GF00012000", SENIOR, SENIOR_MATERIALS, AS_OF), 5000
    )
    print(f"(for scale) catalog.decide alone {decide:.1f} us")
    task = opener(review, WINDOW)
    for batch in (1, 16, 64):
        total = 600 if batch == 1 else 6400
        without = statistics.median(append_us(None, batch, total) for _ in range(3))
        with_task = statistics.median(append_us(task, batch, total) for _ in range(3))
        print(
            f"append, batches of {batch:2d}: no task {without:6.1f} us/record, "
            f"with a task row {with_task:6.1f} us/record"
        )


if __name__ == "__main__":
    main()
