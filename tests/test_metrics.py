"""Prometheus metrics on their own HTTP port: scraped from real servers (one process, and
`--workers 2` summed by the supervisor) and parsed with prometheus_client's own parser; the
counts are the decisions, records and tasks the test made, exactly."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_server.settings import Settings, parse_args
from tests.conftest import LiveServer, ServerProcess
from tests.support import (
    PUBLISHED_AT_START,
    RULESETS,
    SENIOR_FILE,
    SENIOR_MATERIALS,
    centenarian_request,
    decide_request,
    numbered_senior,
    senior_outcome,
)

SENIOR = "GF00012000"
OUTCOME = {pb.OUTCOME_APPROVE: "APPROVE", pb.OUTCOME_REJECT: "REJECT",
           pb.OUTCOME_MANUAL_REVIEW: "MANUAL_REVIEW"}  # fmt: skip
ALLOWED_LABELS = {"item_code", "outcome", "state", "result", "le"}


def scrape(listen: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=10) as r:
        text = r.read().decode("utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict[Any, float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def cases(n: int) -> list[tuple[str, pb.DecideRequest]]:
    """n senior cases (ages 60-109: rejected, approved, sent to review) and what each gets."""
    out = []
    for i in range(n):
        age, facts = numbered_senior(i)
        out.append((OUTCOME[senior_outcome(age)], decide_request(SENIOR, facts, SENIOR_MATERIALS)))
    return out


def no_personal_data(samples: dict[Any, float], *secrets: str) -> None:
    for (_, labels), _ in samples.items():
        assert {k for k, _ in labels} <= ALLOWED_LABELS, labels
        assert not any(s in v for _, v in labels for s in secrets), labels


# -- one process


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[LiveServer]:
    s = LiveServer(
        Settings(
            listen="127.0.0.1:0",
            rulesets=RULESETS,
            state_dir=tmp_path / "state",
            watch_seconds=0,
            alert_interval_seconds=0,
            metrics_listen="127.0.0.1:0",
        )
    )
    yield s
    s.stop()


def test_one_process_counts_what_it_decided_and_recorded(server: LiveServer) -> None:
    made = cases(60)
    with grpc.insecure_channel(server.target) as ch:
        stub = pb_grpc.ApprovalServiceStub(ch)
        for want, req in made:
            assert OUTCOME[stub.Decide(req).decision.outcome] == want
        # A request_id answered from the record is no new decision; a refused case is none.
        again = centenarian_request()
        again.request_id = "重复-1"
        first = OUTCOME[stub.Decide(again).decision.outcome]
        assert OUTCOME[stub.Decide(again).decision.outcome] == first
        bad = decide_request(SENIOR, {"applicant": {"id_number": "x"}}, [])
        with pytest.raises(grpc.RpcError):
            stub.Decide(bad)
    assert server.running.metrics is not None
    got = scrape(server.running.metrics.listen)
    n = len(made) + 1
    for outcome in ("APPROVE", "REJECT", "MANUAL_REVIEW"):
        want = sum(o == outcome for o, _ in made) + (outcome == first)
        assert want > 0
        assert value(got, "miaopi_decisions_total", item_code=SENIOR, outcome=outcome) == want
    assert total(got, "miaopi_decisions_total") == n
    assert value(got, "miaopi_decision_seconds_count") == n
    assert value(got, "miaopi_decision_seconds_bucket", le="+Inf") == n
    store = server.running.store
    # every record this process wrote: its decisions and the publication of its rule set
    assert store.records_written == n + PUBLISHED_AT_START
    assert value(got, "miaopi_audit_batch_records_sum") == n + PUBLISHED_AT_START
    assert value(got, "miaopi_audit_batch_records_count") == store.batches
    assert value(got, "miaopi_audit_commit_seconds_count") == store.batches
    reviews = sum(o == "MANUAL_REVIEW" for o, _ in made) + (first == "MANUAL_REVIEW")
    assert value(got, "miaopi_tasks_open", item_code=SENIOR, state="open") == reviews
    assert total(got, "miaopi_tasks_overdue") == 0
    no_personal_data(got, *(req.facts["applicant"]["id_number"] for _, req in made))


def test_overdue_tasks_are_read_from_the_store_at_scrape(server: LiveServer) -> None:
    """A review task whose deadlines passed long ago counts as overdue (statutory) at the next
    scrape; claimed, it is still open, in its new state."""
    made = [(o, r) for o, r in cases(50) if o == "MANUAL_REVIEW"]
    with grpc.insecure_channel(server.target) as ch:
        stub = pb_grpc.ApprovalServiceStub(ch)
        ids = [stub.Decide(r).decision.decision_id for _, r in made]
    assert len(ids) == 5
    listen = server.running.metrics.listen  # type: ignore[union-attr]
    assert total(scrape(listen), "miaopi_tasks_overdue") == 0
    db = Path(server.running.store.path)
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        when = "2025-06-02T02:00:00.000000Z"
        conn.execute(
            "UPDATE tasks SET opened_at = ?, task = json_set(task, '$.opened_at', ?)"
            " WHERE decision_id IN (?, ?)",
            (when, when, ids[0], ids[1]),
        )
        conn.execute(
            "UPDATE tasks SET state = 'claimed', task = json_set(task, '$.state', 'claimed')"
            " WHERE decision_id = ?",
            (ids[1],),
        )
    got = scrape(listen)
    late = {"item_code": SENIOR, "state": "overdue_statutory"}
    assert value(got, "miaopi_tasks_overdue", **late) == 2
    assert total(got, "miaopi_tasks_overdue") == 2
    assert value(got, "miaopi_tasks_open", item_code=SENIOR, state="open") == 4
    assert value(got, "miaopi_tasks_open", item_code=SENIOR, state="claimed") == 1


def test_reload_results(server: LiveServer, tmp_path: Path) -> None:
    with grpc.insecure_channel(server.target) as ch:
        stub = pb_grpc.ApprovalServiceStub(ch)
        assert stub.ReloadRulesets(pb.ReloadRulesetsRequest(), timeout=60).applied
    got = scrape(server.running.metrics.listen)  # type: ignore[union-attr]
    assert value(got, "miaopi_reloads_total", result="applied") == 1
    assert value(got, "miaopi_reloads_total", result="refused") == 0


def test_a_refused_reload_counts_as_refused(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    import shutil

    shutil.copytree(RULESETS, rules)
    s = LiveServer(
        Settings(
            listen="127.0.0.1:0",
            rulesets=rules,
            state_dir=tmp_path / "state",
            watch_seconds=0,
            alert_interval_seconds=0,
            metrics_listen="127.0.0.1:0",
        )
    )
    try:
        (rules / SENIOR_FILE).write_text("item_code: [broken\n", encoding="utf-8")
        with grpc.insecure_channel(s.target) as ch:
            r = pb_grpc.ApprovalServiceStub(ch).ReloadRulesets(pb.ReloadRulesetsRequest())
        assert not r.applied
        got = scrape(s.running.metrics.listen)  # type: ignore[union-attr]
        assert value(got, "miaopi_reloads_total", result="refused") == 1
        assert value(got, "miaopi_reloads_total", result="applied") == 0
    finally:
        s.stop()


def test_without_the_option_there_is_no_endpoint(tmp_path: Path) -> None:
    s = LiveServer(Settings(listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path / "s"))
    try:
        assert s.running.metrics is None
        assert s.running.store.on_batch is None
    finally:
        s.stop()


def test_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args([]).metrics_listen == ""
    assert parse_args(["--metrics-listen", "127.0.0.1:9464"]).metrics_listen == "127.0.0.1:9464"
    assert parse_args(["--metrics-listen", "[::1]:0"]).metrics_listen == "[::1]:0"
    for bad in ("9464", "localhost:", "host:port", ":9464", "h:70000"):
        with pytest.raises(SystemExit) as exc:
            parse_args(["--metrics-listen", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"--metrics-listen: needs HOST:PORT (a port from 0 to 65535), not {bad!r}" in err


def test_a_taken_metrics_port_stops_the_start(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(
            listen="127.0.0.1:0",
            rulesets=RULESETS,
            state_dir=tmp_path / "state",
            metrics_listen=f"127.0.0.1:{port}",
        )
        with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            LiveServer(dataclasses.replace(settings))


# -- --workers 2


def _decide_on_own_connection(target: str, req: pb.DecideRequest) -> str:
    """One connection per call (channels otherwise share one, and one connection always
    lands on one worker), so the kernel spreads the calls over the workers."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(target, options=options) as ch:
        d = pb_grpc.ApprovalServiceStub(ch).Decide(req, timeout=30).decision
    return OUTCOME[d.outcome]


def _workers(tmp_path: Path, state: Path) -> ServerProcess:
    return ServerProcess(
        RULESETS,
        state,
        "--watch",
        "0",
        "--alert-interval",
        "0",
        "--workers",
        "2",
        "--metrics-listen",
        "127.0.0.1:0",
    )


@pytest.mark.slow
def test_workers_are_summed_by_the_supervisor(tmp_path: Path) -> None:
    """Both workers decide; the one endpoint reports the set's totals, exactly. A new run of
    the set starts from zero (its directory is emptied), while the tasks, read from the store,
    are still there."""
    state = tmp_path / "state"
    server = _workers(tmp_path, state)
    try:
        listen = server.wait_for("metrics.started")["listen"]
        made = cases(128)
        with ThreadPoolExecutor(16) as pool:
            got_outcomes = list(
                pool.map(lambda c: _decide_on_own_connection(server.target, c[1]), made)
            )
        assert got_outcomes == [o for o, _ in made]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            decided = [e for e in server.events if e["event"] == "decision"]
            if len(decided) == len(made):
                break
            time.sleep(0.1)
        assert {e.get("worker") for e in decided} == {0, 1}, "both workers should decide"
        files = sorted(p.name for p in (state / "prometheus").glob("counter_*.db"))
        assert len(files) == 2, files  # one per worker, summed at scrape
        got = scrape(listen)
        n = len(made)
        for outcome in ("APPROVE", "REJECT", "MANUAL_REVIEW"):
            want = sum(o == outcome for o, _ in made)
            assert value(got, "miaopi_decisions_total", item_code=SENIOR, outcome=outcome) == want
        assert total(got, "miaopi_decisions_total") == n
        assert value(got, "miaopi_decision_seconds_count") == n
        with contextlib.closing(sqlite3.connect(state / "audit.sqlite3")) as db:
            (records,) = db.execute("SELECT count(*) FROM records").fetchone()
        assert records == n + PUBLISHED_AT_START  # and the rule set's publication
        assert value(got, "miaopi_audit_batch_records_sum") == records
        assert value(got, "miaopi_audit_commit_seconds_count") == value(
            got, "miaopi_audit_batch_records_count"
        )
        reviews = sum(o == "MANUAL_REVIEW" for o, _ in made)
        assert value(got, "miaopi_tasks_open", item_code=SENIOR, state="open") == reviews
        no_personal_data(got, *(req.facts["applicant"]["id_number"] for _, req in made))
    finally:
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0

    again = _workers(tmp_path, state)
    try:
        got = scrape(again.wait_for("metrics.started")["listen"])
        assert total(got, "miaopi_decisions_total") == 0
        assert value(got, "miaopi_decision_seconds_count") == 0
        assert value(got, "miaopi_tasks_open", item_code=SENIOR, state="open") == reviews
    finally:
        again.signal(signal.SIGTERM)
        assert again.wait(30) == 0
