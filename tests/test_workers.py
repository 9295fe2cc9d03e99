"""`--workers 2`: two server processes on one port append to one audit trail, reload together,
and stop together."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_server.ops.workers import exit_code
from tests.conftest import ServerProcess
from tests.support import (
    PUBLISHED_AT_START,
    RULESETS,
    SENIOR_FILE,
    SENIOR_MATERIALS,
    centenarian_request,
    decide_request,
    numbered_senior,
    senior_outcome,
    set_amount,
)

pytestmark = pytest.mark.slow


@pytest.fixture()
def rules(tmp_path):
    root = tmp_path / "rules"
    shutil.copytree(RULESETS, root)
    return root


@pytest.fixture()
def workers(rules, tmp_path):
    server = ServerProcess(rules, tmp_path / "state", "--watch", "0", "--workers", "2")
    yield server
    if server.proc.poll() is None:
        server.signal(signal.SIGTERM)
        server.wait(30)


def _channel(target: str) -> grpc.Channel:
    """A channel with a connection of its own: channels to one target otherwise share one
    (gRPC's global subchannel pool), and one connection always lands on one worker."""
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def _decide(target: str, i: int) -> tuple[int, pb.Decision]:
    """Decide case i on a connection of its own, so the kernel spreads them over workers."""
    age, facts = numbered_senior(i)
    with _channel(target) as ch:
        stub = pb_grpc.ApprovalServiceStub(ch)
        req = decide_request("GF00012000", facts, SENIOR_MATERIALS)
        return age, stub.Decide(req, timeout=30).decision


def _digests(target: str, n: int) -> set[str]:
    """The catalog digest reported over n fresh connections."""
    out = set()
    for _ in range(n):
        with _channel(target) as ch:
            stub = pb_grpc.ApprovalServiceStub(ch)
            out.add(stub.GetRulesetStatus(pb.GetRulesetStatusRequest(), timeout=10).catalog_digest)
    return out


def test_both_workers_decide_into_one_verified_chain(workers, tmp_path):
    """64 concurrent clients: every answer is its own case's, both processes answered, and the
    audit trail written by both is one unbroken, verified chain."""
    started = workers.wait_for("server.started")
    assert started["workers"] == 2 and len(set(started["pids"])) == 2
    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(lambda i: _decide(workers.target, i), range(256)))
    for age, d in results:
        assert d.derived_facts["applicant.age"] == age
        assert d.outcome == senior_outcome(age)
        assert d.receipt.seq > 0
    # Before them: the one record of the set both workers started with (published once).
    first = PUBLISHED_AT_START + 1
    assert sorted(d.receipt.seq for _, d in results) == list(range(first, first + 256))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answered_by = {e.get("worker") for e in workers.events if e["event"] == "decision"}
        if len([e for e in workers.events if e["event"] == "decision"]) == 256:
            break
        time.sleep(0.1)
    assert answered_by == {0, 1}, "the kernel should have spread 256 connections over both"
    with grpc.insecure_channel(workers.target) as ch:
        v = pb_grpc.ApprovalServiceStub(ch).VerifyAuditTrail(pb.VerifyAuditTrailRequest())
    assert v.ok and v.checked == PUBLISHED_AT_START + 256, v
    with sqlite3.connect(tmp_path / "state" / "audit.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM records").fetchone() == (PUBLISHED_AT_START + 256,)


def test_request_id_is_idempotent_across_workers(workers):
    """The same request_id sent on many connections at once is decided and recorded once."""

    def send(_: int) -> str:
        with _channel(workers.target) as ch:
            req = centenarian_request()
            req.request_id = "同一请求-42"
            return pb_grpc.ApprovalServiceStub(ch).Decide(req, timeout=30).decision.decision_id

    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(send, range(32)))
    assert len(ids) == 1
    with grpc.insecure_channel(workers.target) as ch:
        v = pb_grpc.ApprovalServiceStub(ch).VerifyAuditTrail(pb.VerifyAuditTrailRequest())
    assert v.ok and v.checked == PUBLISHED_AT_START + 1


def _publications(state) -> list[tuple[str, str]]:
    """(trigger, by) of every rule set publication on the trail, in order."""
    with sqlite3.connect(state / "audit.sqlite3") as db:
        rows = db.execute("SELECT body FROM records WHERE kind = 'event' ORDER BY seq")
        found = [json.loads(body)["event"] for (body,) in rows]
    return [(e["trigger"], e["by"]) for e in found if e["type"] == "ruleset_published"]


def _reloads(workers, n: int) -> list[dict]:
    """The first n rules.reloaded events, waiting for them."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done = [e for e in workers.events if e["event"] == "rules.reloaded"]
        if len(done) >= n:
            return done
        time.sleep(0.1)
    return [e for e in workers.events if e["event"] == "rules.reloaded"]


def test_reload_reaches_every_worker(workers, rules, tmp_path):
    """SIGHUP to the supervisor, and ReloadRulesets on any one connection, reload all workers;
    each act is on the record once, however many workers carry it out."""
    state = tmp_path / "state"
    assert _publications(state) == [("start", "")]
    before = _digests(workers.target, 12)
    assert len(before) == 1
    set_amount(rules, 444)
    workers.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        reloaded = {e.get("worker") for e in workers.events if e["event"] == "rules.reloaded"}
        if reloaded == {0, 1}:
            break
        time.sleep(0.1)
    assert reloaded == {0, 1}
    after_sighup = _digests(workers.target, 12)
    assert len(after_sighup) == 1 and after_sighup != before
    assert len(_reloads(workers, 2)) == 2
    assert _publications(state) == [("start", ""), ("SIGHUP", "signal")]

    set_amount(rules, 555)
    with grpc.insecure_channel(workers.target) as ch:
        r = pb_grpc.ApprovalServiceStub(ch).ReloadRulesets(pb.ReloadRulesetsRequest(), timeout=20)
    assert r.applied and list(r.changed) == ["GF00012000@2024.1"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        after_rpc = _digests(workers.target, 12)
        if len(after_rpc) == 1 and after_rpc.isdisjoint(after_sighup):
            break
        time.sleep(0.2)
    assert len(after_rpc) == 1 and after_rpc.isdisjoint(after_sighup | before)
    # The worker that served the RPC, then both on the relayed SIGHUP: one record, the RPC's.
    reloads = _reloads(workers, 5)
    assert sorted(e["trigger"] for e in reloads[2:]) == ["SIGHUP", "SIGHUP", "rpc"]
    assert _publications(state) == [("start", ""), ("SIGHUP", "signal"), ("rpc", "anonymous")]
    # Another SIGHUP, the files unchanged: another act, on the record once (as for one process).
    workers.signal(signal.SIGHUP)
    assert len(_reloads(workers, 7)) == 7
    assert _publications(state)[3:] == [("SIGHUP", "signal")]
    assert (rules / SENIOR_FILE).exists()


def test_a_watched_change_is_published_by_one_worker_for_all(rules, tmp_path):
    """With --watch, worker 0 watches; what it publishes the other worker reloads too, and
    the change is on the record once."""
    state = tmp_path / "state"
    server = ServerProcess(rules, state, "--watch", "0.2", "--workers", "2")
    try:
        before = _digests(server.target, 8)
        set_amount(rules, 444)
        # Worker 0 on the change, then both on the SIGHUP relayed for it.
        done = _reloads(server, 3)
        assert sorted((e["trigger"], e.get("worker")) for e in done) == [
            ("SIGHUP", 0),
            ("SIGHUP", 1),
            ("watch", 0),
        ]
        after = _digests(server.target, 8)
        assert len(after) == 1 and after != before
        assert _publications(state) == [("start", ""), ("watch", "")]
    finally:
        server.signal(signal.SIGTERM)
        server.wait(30)


def test_sigterm_stops_all_and_a_dead_worker_stops_the_set(rules, tmp_path):
    """SIGTERM: every worker drains and the supervisor exits 0. A worker killed outright takes
    the set down with a non-zero exit, for the process manager to restart."""
    server = ServerProcess(rules, tmp_path / "a", "--watch", "0", "--workers", "2")
    pids = server.wait_for("server.started")["pids"]
    server.signal(signal.SIGTERM)
    assert server.wait(30) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    server = ServerProcess(rules, tmp_path / "b", "--watch", "0", "--workers", "2")
    pids = server.wait_for("server.started")["pids"]
    os.kill(pids[1], signal.SIGKILL)
    assert server.wait(30) != 0
    assert server.wait_for("worker.exited")["worker"] == 1
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_second_set_cannot_share_a_fixed_port(rules, tmp_path):
    """Workers share their port on purpose; another set (or server) on it is refused."""
    port = _free_port()
    first = ServerProcess(
        rules, tmp_path / "a", "--watch", "0", "--workers", "2", "--listen", f"127.0.0.1:{port}"
    )
    try:
        assert first.target == f"127.0.0.1:{port}"
        second = subprocess.run(
            [sys.executable, "-m", "miaopi_server.app", "--rulesets", str(rules), "--state-dir",
             str(tmp_path / "b"), "--insecure-no-auth", "--log-format", "json", "--watch", "0",
             "--workers", "2", "--listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    finally:
        first.signal(signal.SIGTERM)
        assert first.wait(30) == 0


def test_sigterm_during_start_up_stops_at_once(rules, tmp_path):
    """A stop asked for while workers are still starting is not held until all have started."""
    server = subprocess.Popen(
        [sys.executable, "-m", "miaopi_server.app", "--rulesets", str(rules), "--state-dir",
         str(tmp_path), "--insecure-no-auth", "--log-format", "json", "--watch", "0",
         "--workers", "8", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stderr is not None
    for line in server.stderr:  # the first worker is on its way
        if '"auth.disabled"' in line:
            break
    server.send_signal(signal.SIGTERM)
    assert server.wait(30) == 0
    rest = [json.loads(line) for line in server.stderr.read().splitlines() if line.strip()]
    assert not [e for e in rest if e.get("event") == "server.started"], rest
    assert [e for e in rest if e.get("during") == "start-up"], rest


def test_exit_codes_as_a_shell_reports_them():
    assert [exit_code(c) for c in (0, 2, -9, -15, None)] == [0, 2, 137, 143, 1]


def test_workers_need_host_and_port(rules, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "miaopi_server.app", "--rulesets", str(rules), "--state-dir",
         str(tmp_path), "--insecure-no-auth", "--workers", "2", "--listen", "unix:/tmp/x.sock"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "--workers needs --listen HOST:PORT" in done.stderr


def test_restart_on_the_same_port_right_after_stopping(rules, tmp_path):
    """Connections of the previous run lingering in TIME_WAIT do not block a restart."""
    port = _free_port()
    args = ("--watch", "0", "--workers", "2", "--listen", f"127.0.0.1:{port}")
    for run in range(2):
        server = ServerProcess(rules, tmp_path / "state", *args)
        channels = [_channel(server.target) for _ in range(8)]
        try:
            for ch in channels:  # open connections, which the stopping server closes first
                pb_grpc.ApprovalServiceStub(ch).GetRulesetStatus(pb.GetRulesetStatusRequest())
        finally:
            server.signal(signal.SIGTERM)
            assert server.wait(30) == 0, f"run {run}"
            for ch in channels:
                ch.close()


def test_a_worker_signals_only_a_supervisor_that_started_it(rules, tmp_path):
    """Run by hand with the hidden --worker-index, a server's ReloadRulesets must not send
    SIGUSR1 to whatever started it (it would end a shell); here that is this test."""
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, _frame: received.append(signum))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "miaopi_server.app", "--rulesets", str(rules), "--state-dir",
         str(tmp_path), "--insecure-no-auth", "--watch", "0", "--worker-index", "0",
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("miaopi-worker-ready")
        with _channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.ApprovalServiceStub(ch)
            assert stub.ReloadRulesets(pb.ReloadRulesetsRequest(), timeout=20).applied
        time.sleep(0.5)
        assert received == []
    finally:
        proc.terminate()
        proc.wait(30)
        signal.signal(signal.SIGUSR1, previous)
