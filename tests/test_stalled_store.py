"""A store read that stalls (a PostgreSQL pool waiting for a connection, a locked SQLite
file) holds up only the call that made it: the reads of GetDecision, ListDecisions, GetTask,
ListTasks and the console's case page run in a thread, so the health check and Decide on the
same event loop still answer while it waits. The stall is made at the store boundary: the
real store's method, entered and then held until the test lets it go."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi.v1 import review_pb2 as rpb
from miaopi.v1 import review_pb2_grpc as rpb_grpc
from tests.conftest import LiveServer
from tests.console_support import Http, console_server, console_url, md, review_case

HELD_AT_MOST = 10.0  # a stall that blocks the event loop is let go after this (the test fails)


class Stall:
    """Wraps a store method: each call says it has entered, then waits to be released."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.entered = threading.Event()
        self.release = threading.Event()
        self.gave_up = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        if not self.release.wait(HELD_AT_MOST):
            self.gave_up = True  # nobody could release it: the event loop was blocked
        return self.real(*args, **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    running = console_server(tmp_path_factory.mktemp("stalled"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def case_id(server: LiveServer) -> str:
    with grpc.insecure_channel(server.target) as ch:
        return review_case(pb_grpc.ApprovalServiceStub(ch))


def get_decision(server: LiveServer, case_id: str) -> None:
    with grpc.insecure_channel(server.target) as ch:
        stub = pb_grpc.ApprovalServiceStub(ch)
        stub.GetDecision(pb.GetDecisionRequest(decision_id=case_id), metadata=md("rev-civil"))


def list_decisions(server: LiveServer, case_id: str) -> None:
    with grpc.insecure_channel(server.target) as ch:
        stub = pb_grpc.ApprovalServiceStub(ch)
        assert stub.ListDecisions(pb.ListDecisionsRequest(), metadata=md("win")).decisions


def get_task(server: LiveServer, case_id: str) -> None:
    with grpc.insecure_channel(server.target) as ch:
        stub = rpb_grpc.ReviewServiceStub(ch)
        stub.GetTask(rpb.GetTaskRequest(decision_id=case_id), metadata=md("rev-civil"))


def list_tasks(server: LiveServer, case_id: str) -> None:
    with grpc.insecure_channel(server.target) as ch:
        stub = rpb_grpc.ReviewServiceStub(ch)
        assert stub.ListTasks(rpb.ListTasksRequest(), metadata=md("rev-civil")).tasks


def case_page(server: LiveServer, case_id: str) -> None:
    client = Http(console_url(server))
    assert client.sign_in("rev-civil").status == 303
    assert client.get(f"/cases/{case_id}").status == 200


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("get", get_decision),
        ("list", list_decisions),
        ("task", get_task),
        ("tasks", list_tasks),
        ("history", case_page),
    ],
    ids=["GetDecision", "ListDecisions", "GetTask", "ListTasks", "case page"],
)
def test_a_stalled_read_leaves_health_and_decide_answering(
    server: LiveServer,
    case_id: str,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    call: Callable[[LiveServer, str], None],
) -> None:
    store = server.running.store
    stall = Stall(getattr(store, method))
    monkeypatch.setattr(store, method, stall)
    finished: list[str] = []

    def slow() -> None:
        call(server, case_id)
        finished.append("slow")

    caller = threading.Thread(target=slow)
    caller.start()
    try:
        assert stall.entered.wait(30), "the call never reached the store"
        with grpc.insecure_channel(server.target) as ch:
            health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            finished.append("health")
            review_case(pb_grpc.ApprovalServiceStub(ch))  # a Decide
            finished.append("decide")
    finally:
        stall.release.set()
        caller.join(60)
    assert finished == ["health", "decide", "slow"]
    assert not stall.gave_up
