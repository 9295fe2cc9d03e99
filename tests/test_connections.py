"""Connections that never finish their handshake cannot exhaust the server: they are closed
after the handshake timeout, and beyond the connection cap new ones are closed at once."""

from __future__ import annotations

import os
import socket
import time

import grpc
import pytest
from google.protobuf import json_format

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.support import RULESETS, SENIOR, SENIOR_MATERIALS

PARTIAL_PREFACE = b"PRI * HTTP/2.0\r\n"  # the HTTP/2 client preface, cut short


@pytest.fixture()
def server(tmp_path):
    live = LiveServer(
        Settings(
            listen="127.0.0.1:0",
            rulesets=RULESETS,
            state_dir=tmp_path,
            watch_seconds=0,
            handshake_timeout_seconds=1.0,
            max_connections=4,
        )
    )
    yield live
    live.stop()


def half_open(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(PARTIAL_PREFACE)
        socks.append(s)
    return socks


def closed_by_server(s: socket.socket, within: float) -> bool:
    """True once the server has closed `s` (EOF or reset), reading whatever it sent first."""
    deadline = time.monotonic() + within
    s.settimeout(0.1)
    while time.monotonic() < deadline:
        try:
            if s.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def decide(target: str) -> pb.Decision:
    req = pb.DecideRequest(item_code="GF00012000", materials=SENIOR_MATERIALS)
    json_format.ParseDict(SENIOR, req.facts)
    with grpc.insecure_channel(target) as channel:
        return pb_grpc.ApprovalServiceStub(channel).Decide(req, timeout=10).decision


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class TestHalfOpenConnections:
    def test_unfinished_handshakes_are_closed_and_service_continues(self, server):
        """20 connections stuck in the HTTP/2 preface: the server closes every one of them
        (those past the cap at once, the rest after the 1 s handshake timeout), its file
        descriptors come back, and a real client decides afterwards."""
        port = server.running.port
        assert decide(server.target).outcome == pb.OUTCOME_APPROVE
        before = open_fds()
        socks = half_open(port, 20)
        try:
            assert all(closed_by_server(s, within=5.0) for s in socks)
        finally:
            for s in socks:
                s.close()
        time.sleep(0.5)
        assert open_fds() <= before + 2  # the test's own client channel may linger
        assert decide(server.target).outcome == pb.OUTCOME_APPROVE

    def test_connections_beyond_the_cap_are_refused_at_once(self, server):
        """With 4 connections held half-open, a fifth is closed well before the timeout."""
        held = half_open(server.running.port, 4)
        try:
            time.sleep(0.2)
            (extra,) = half_open(server.running.port, 1)
            started = time.monotonic()
            assert closed_by_server(extra, within=0.8)
            assert time.monotonic() - started < 0.8
            extra.close()
        finally:
            for s in held:
                s.close()
