"""Two real server processes on one real PostgreSQL (`--store postgresql://...`): one
decision per request_id, one chain and Merkle log, exclusive claims, group commit, and fail
closed when the database goes away (service resumes, no restart, when it is back)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import io
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi.v1 import review_pb2 as rpb
from miaopi.v1 import review_pb2_grpc as rpb_grpc
from miaopi_server.audit import seal
from miaopi_server.clock import SHANGHAI
from tests.casework_support import md, write_credentials
from tests.conftest import ServerProcess
from tests.postgres import PostgresServer, migrated_database
from tests.support import (
    CENTENARIAN,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    decide_request,
    resident_id,
)


def review_case(approval: Any) -> str:
    req = decide_request("GF00012000", CENTENARIAN, SENIOR_MATERIALS)
    req.facts["applicant"]["id_number"] = resident_id("1915-06-01")  # 111: MANUAL_REVIEW
    d = approval.Decide(req, metadata=md("win")).decision
    assert d.outcome == pb.OUTCOME_MANUAL_REVIEW
    return str(d.decision_id)


def cli(target: str, who: str, *argv: str) -> tuple[int, str]:
    from structlog.testing import capture_logs

    from miaopi_client.cli import main

    out = io.StringIO()
    with capture_logs(), contextlib.redirect_stdout(out):
        code = main(["--target", target, "--token", f"token-{who}", *argv])
    return code, out.getvalue()


class Nodes:
    def __init__(self, postgres: PostgresServer, root: Path) -> None:
        self.pg = postgres
        self.dsn = migrated_database(postgres)
        key = root / "seal_ed25519.pem"  # the city's one sealing key, on every node
        seal.load_or_create(key)
        creds = write_credentials(root / "credentials.yaml")
        self.procs: list[ServerProcess] = []
        try:
            for name in ("n1", "n2"):  # n2 joins the trail n1's start publication began
                state = root / name
                state.mkdir()
                extra = ["--store", self.dsn, "--node-id", name, "--seal-key", str(key),
                         "--credentials", str(creds), "--watch", "0", "--rate", "0",
                         "--alert-interval", "0"]  # fmt: skip
                self.procs.append(ServerProcess(RULESETS, state, *extra, auth=True))
        except BaseException:
            self.stop()
            raise
        self.channels = [grpc.insecure_channel(p.target) for p in self.procs]
        self.approval = [pb_grpc.ApprovalServiceStub(c) for c in self.channels]
        self.review = [rpb_grpc.ReviewServiceStub(c) for c in self.channels]

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        return self.pg.query(self.dsn, query, *args)

    def stop(self) -> None:
        for p in self.procs:
            p.signal(15)
            p.wait()

    def close(self) -> None:
        for c in self.channels:
            c.close()
        self.stop()


@pytest.fixture(scope="module")
def nodes(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    n = Nodes(postgres, tmp_path_factory.mktemp("nodes"))
    yield n
    n.close()


def senior(request_id: str) -> Any:
    return decide_request("GF00012000", SENIOR, SENIOR_MATERIALS, request_id=request_id)


def test_nodes_starting_with_one_set_record_its_publication_once(nodes: Nodes) -> None:
    """n1's start published the set (one ruleset_published event, the set archived once); n2,
    starting on that trail without a witness, joined it and published nothing."""
    events = [json.loads(b)["event"] for (b,) in nodes.sql(
        "SELECT body FROM records WHERE kind = 'event' ORDER BY seq")]  # fmt: skip
    published = [e for e in events if e["type"] == "ruleset_published"]
    assert [(e["trigger"], e["archived"]) for e in published] == [("start", True)]
    assert nodes.sql("SELECT set_digest FROM published_rulesets") == [(published[0]["set_digest"],)]
    joined = nodes.procs[1].wait_for("audit.trail_joined")
    assert joined["tree_size"] == 1 and "password" not in json.dumps(joined)
    assert not [e for e in nodes.procs[0].events if e["event"] == "audit.trail_joined"]


def test_duplicates_at_a_barrier_on_two_nodes_make_one_decision(nodes: Nodes) -> None:
    """100 times, the same request_id released together to both nodes: one decision_id,
    one record; and both nodes wrote some of them (receipts name the node)."""
    writers = set()
    barrier = threading.Barrier(2)

    def send(side: int, request_id: str) -> Any:
        barrier.wait(timeout=30)
        return nodes.approval[side].Decide(senior(request_id), metadata=md("win")).decision

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for i in range(100):
            rid = f"dup-{i}"
            a, b = pool.map(send, (0, 1), (rid, rid))
            assert a.decision_id == b.decision_id and a.receipt == b.receipt
            writers.add(a.receipt.node_id)
    assert writers == {"n1", "n2"}
    rows = nodes.sql("SELECT request_id, count(*) FROM records WHERE request_id LIKE 'dup-%%'"
                     " GROUP BY request_id")  # fmt: skip
    assert len(rows) == 100 and {n for _, n in rows} == {1}


def test_concurrent_writers_make_one_log_that_verifies(nodes: Nodes) -> None:
    """16 callers on two nodes: seq never repeats, no gaps; `miaopi audit verify` through
    either node checks the whole trail; commits batch records (records per commit)."""
    before = nodes.sql("SELECT count(*) FROM records")[0][0]
    heads_before = nodes.sql("SELECT count(*) FROM tree_heads")[0][0]
    counter = itertools.count()

    def burst(side: int) -> list[int]:
        seqs = []
        for _ in range(25):
            rid = f"burst-{next(counter)}"
            d = nodes.approval[side].Decide(senior(rid), metadata=md("win")).decision
            seqs.append(d.receipt.seq)
        return seqs

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        per_caller = list(pool.map(burst, [i % 2 for i in range(16)]))
    for seqs in per_caller:
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # never back, never again
    made = sorted(s for seqs in per_caller for s in seqs)
    assert made == list(range(before + 1, before + 401))
    assert [r[0] for r in nodes.sql("SELECT seq FROM records ORDER BY seq")] == list(
        range(1, before + 401)
    )
    commits = nodes.sql("SELECT count(*) FROM tree_heads")[0][0] - heads_before
    print(f"group commit on PostgreSQL: 400 records in {commits} commits "
          f"({400 / commits:.1f} records per commit)")  # fmt: skip
    assert commits < 400
    for proc in nodes.procs:
        code, out = cli(proc.target, "sup", "audit", "verify")
        assert code == 0 and "audit trail OK" in out, out


def test_a_task_claimed_on_one_node_cannot_be_claimed_on_the_other(nodes: Nodes) -> None:
    ids = [review_case(nodes.approval[i % 2]) for i in range(10)]

    def claim(args: tuple[int, str]) -> str:
        side, decision_id = args
        who = ("rev-civil", "rev-civil-2")[side]
        try:
            nodes.review[side].ClaimTask(
                rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md(who)
            )
            return who
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
            return ""

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(claim, [(s, d) for d in ids for s in (0, 1)]))
    for i, decision_id in enumerate(ids):
        winners = [w for w in results[2 * i : 2 * i + 2] if w]
        assert len(winners) == 1
        for side in (0, 1):  # both nodes see the one claim
            task = (
                nodes.review[side]
                .GetTask(rpb.GetTaskRequest(decision_id=decision_id), metadata=md("sup"))
                .task
            )
            assert task.assignee == winners[0]


def test_database_down_fails_closed_and_service_resumes(nodes: Nodes) -> None:
    """PostgreSQL stopped mid-burst: Decide answers UNAVAILABLE, never a decision without its
    record; started again: both nodes serve again without a restart, and every decision
    acknowledged is on record."""
    acked: dict[str, str] = {}
    failed: list[grpc.StatusCode] = []
    stop = threading.Event()
    counter = itertools.count()
    lock = threading.Lock()

    def burst(side: int) -> None:
        while not stop.is_set():
            rid = f"down-{next(counter)}"
            try:
                d = nodes.approval[side].Decide(senior(rid), metadata=md("win"), timeout=30)
                with lock:
                    acked[rid] = d.decision.decision_id
            except grpc.RpcError as exc:
                with lock:
                    failed.append(exc.code())
            time.sleep(0.005)

    threads = [threading.Thread(target=burst, args=(i % 2,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 20
        while len(acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        nodes.pg.stop()
        deadline = time.monotonic() + 30
        while not failed and time.monotonic() < deadline:
            time.sleep(0.05)
        down_acked = len(acked)
        nodes.pg.start()
        deadline = time.monotonic() + 60
        while len(acked) < down_acked + 20 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert failed and set(failed) == {grpc.StatusCode.UNAVAILABLE}, set(failed)
    assert len(acked) >= down_acked + 20, "service did not resume after PostgreSQL came back"
    recorded = dict(
        nodes.sql("SELECT request_id, decision_id FROM records WHERE request_id LIKE 'down-%%'")
    )
    assert {rid: recorded.get(rid) for rid in acked} == acked
    for side in (0, 1):  # both nodes serve again
        d = nodes.approval[side].Decide(senior(f"after-{side}"), metadata=md("win")).decision
        assert d.receipt.seq > 0


def test_a_nul_in_a_reviewers_text_is_refused_and_kpis_still_answer(nodes: Nodes) -> None:
    """PostgreSQL stores no NUL. Before, a supplement request whose materials held one was
    recorded (escaped in the task's JSON) and from then on every GetKpis of the month failed
    ("unsupported Unicode escape sequence" reading that JSON); an escalation note or a rating
    comment with one was "audit unavailable"; a decision id with one, UNAVAILABLE from a read.
    Now each is the request's INVALID_ARGUMENT, as on SQLite (tests/test_review.py)."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    def bad_fields(call: Any) -> set[str]:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        status = rpc_status.from_call(info.value)
        found = error_details_pb2.BadRequest()
        assert status is not None and status.details[0].Unpack(found)
        return {v.field for v in found.field_violations}

    review = nodes.review[0]
    decision_id = review_case(nodes.approval[0])
    review.ClaimTask(rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md("rev-civil"))
    ask = rpb.RequestSupplementRequest(decision_id=decision_id, materials=["m\x00"], note="n")
    assert bad_fields(lambda: review.RequestSupplement(ask, metadata=md("rev-civil"))) == {
        "materials[0]"
    }
    escalate = rpb.EscalateTaskRequest(decision_id=decision_id, note="督办\x00")
    assert bad_fields(lambda: review.EscalateTask(escalate, metadata=md("sup"))) == {"note"}
    get = rpb.GetTaskRequest(decision_id="a\x00b")
    assert bad_fields(lambda: review.GetTask(get, metadata=md("sup"))) == {"decision_id"}
    month = dt.datetime.now(SHANGHAI).strftime("%Y-%m")
    kpis = review.GetKpis(rpb.GetKpisRequest(month=month, by="item"), metadata=md("sup"))
    assert kpis.total.cases >= 1
