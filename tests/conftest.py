"""Fixtures shared across the suite: the shipped catalog on the real durable_rules engine."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from miaopi_server.decision.catalog import Catalog, load_catalog
from miaopi_server.decision.decide import Decision
from tests.support import RULESETS

TODAY = dt.date(2026, 11, 23)


@pytest.fixture(scope="session", autouse=True)
def quiet_logs() -> None:
    """In-process servers log JSON lines to stderr, so CLI output on stdout stays clean.
    Tests about logging capture them with structlog.testing.capture_logs."""
    from miaopi_server.ops import logs

    logs.configure("json", "info", cache=False)


@pytest.fixture(scope="session")
def catalog() -> Iterator[Catalog]:
    cat = load_catalog(RULESETS)
    yield cat
    cat.close()


@pytest.fixture()
def decide(catalog: Catalog):  # type: ignore[no-untyped-def]
    def run(code: str, facts: dict[str, Any], materials: list[str]) -> Decision:
        return catalog.decide(code, facts, materials, TODAY)

    return run


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One real PostgreSQL for the whole session (tests/postgres.py); tests take fresh
    databases in it."""
    from tests.postgres import postgres_session

    yield from postgres_session()


class LiveServer:
    """A real miaopi gRPC server on 127.0.0.1:<free port>, run on its own event loop thread."""

    def __init__(self, settings: Any, auth: bool = False) -> None:
        import asyncio
        import dataclasses
        import threading

        from miaopi_server.app import create_server

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        if not auth:  # most tests are not about authentication; those that are pass auth=True
            settings = dataclasses.replace(settings, insecure_no_auth=True, rate_per_second=0)
        self.running = asyncio.run_coroutine_threadsafe(create_server(settings), self.loop).result()
        self.target = f"127.0.0.1:{self.running.port}"

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.running.stop(None), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from miaopi_server.settings import Settings

    server = LiveServer(
        Settings(
            listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path_factory.mktemp("state")
        )
    )
    yield server
    server.stop()


class ServerProcess:
    """`python -m miaopi_server.app` as a subprocess with JSON logs and authentication off;
    every log event is collected in `events` by a reader thread."""

    def __init__(self, rulesets: Any, state_dir: Any, *extra: str, auth: bool = False) -> None:
        import json
        import os
        import subprocess
        import sys
        import threading

        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "miaopi_server.app",
                "--listen",
                "127.0.0.1:0",
                "--rulesets",
                str(rulesets),
                "--state-dir",
                str(state_dir),
                "--log-format",
                "json",
                *([] if auth else ["--insecure-no-auth"]),
                *extra,
            ],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                with self._changed:
                    self.events.append(json.loads(line))
                    self._changed.notify_all()

        threading.Thread(target=read, daemon=True).start()
        self.target = self.wait_for("server.started", timeout=60)["listen"]

    def wait_for(self, event: str, timeout: float = 15) -> dict[str, Any]:
        """The first log event named `event`, waiting for it to appear."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: next((e for e in self.events if e["event"] == event), None), timeout
            )
        assert found, f"no {event!r} in {[e['event'] for e in self.events]}"
        return found

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def stubs(server: LiveServer) -> Iterator[tuple[Any, Any]]:
    """ApprovalService and ReviewService stubs on the module's `server` (a LiveServer fixture
    each module defines with its own settings)."""
    import grpc

    from miaopi.v1 import approval_pb2_grpc, review_pb2_grpc

    with grpc.insecure_channel(server.target) as ch:
        yield approval_pb2_grpc.ApprovalServiceStub(ch), review_pb2_grpc.ReviewServiceStub(ch)
