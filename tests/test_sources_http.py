"""The HTTP/JSON connector against a real platform: an http.server on 127.0.0.1 that the test
starts, answering from the real embedded registry (docs/SOURCES.md protocol), and ways it can
fail: no answer in time, 401, 500, replies that are not the protocol's JSON, nobody listening."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from miaopi_server.sources.embedded import EmbeddedRegistry
from miaopi_server.sources.http import HttpPlatform
from miaopi_server.sources.model import SourceUnavailable
from tests.support import REGISTRY, registry_people

TOKEN = "platform-token-1"


class Platform(BaseHTTPRequestHandler):
    """/ok/... answers from the registry; /slow, /e500, /garbage, /badfield, /notdict and
    /badlicence misbehave as named. Every request needs the bearer token."""

    registry: EmbeddedRegistry
    seen: list[dict[str, Any]]

    def log_message(self, *args: Any) -> None:  # quiet test output
        pass

    def _reply(self, status: int, body: bytes) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        self.seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, b'{"error": "unauthenticated"}')
        mode, _, call = self.path.strip("/").partition("/")
        if mode == "slow":  # answers, but too late
            time.sleep(1.0)
            return self._reply(200, b'{"found": false}')
        if mode == "e500":
            return self._reply(500, b'{"error": "internal"}')
        if mode == "garbage":
            return self._reply(200, b"<html>gateway</html>")
        if mode == "notdict":
            return self._reply(200, b"[1, 2]")
        if call == "v1/records":
            rec = self.registry.fetch(request["source"], request["key"], 1)
            if rec is None:
                body: dict[str, Any] = {"found": False}
            else:
                body = {"found": True, "record_id": rec.record_id, "values": rec.values}
            if mode == "badfield":
                body = {"found": True, "record_id": "R", "values": {"shoe_size": 42}}
            return self._reply(200, json.dumps(body, ensure_ascii=False).encode())
        licences = [
            {
                "licence_type": x.licence_type,
                "holder_id": x.holder_id,
                "number": x.number,
                "valid_from": x.valid_from.isoformat(),
                "valid_until": x.valid_until.isoformat() if x.valid_until else None,
                "revoked": x.revoked,
            }
            for x in self.registry.licences(request["holder_id"], 1)
        ]
        if mode == "badlicence":
            licences = [{**licences[0], "valid_from": "yesterday"}]
        return self._reply(200, json.dumps({"licences": licences}).encode())


@pytest.fixture(scope="module")
def platform() -> Iterator[str]:
    reg = EmbeddedRegistry(REGISTRY)
    handler = type("Handler", (Platform,), {"registry": reg, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    reg.close()


def person() -> dict[str, Any]:
    return registry_people(deceased=False)[0]


def test_a_record_and_the_licences_come_back_as_the_registry_holds_them(platform):
    p = person()
    rec = HttpPlatform(platform + "/ok", TOKEN).fetch("population", p["key"], 1)
    assert rec is not None and rec.record_id == p["record_id"]
    assert rec.values == {k: p[k] for k in ("name", "hukou_region", "deceased")}
    assert rec.fetched_at.endswith("Z")
    with contextlib.closing(EmbeddedRegistry(REGISTRY)) as reg:
        want = reg.licences(p["key"], 1)
    assert HttpPlatform(platform + "/ok", TOKEN).licences(p["key"], 1) == want


def test_no_record_is_None(platform):
    assert HttpPlatform(platform + "/ok/", TOKEN).fetch("population", "x", 1) is None


def test_chinese_text_round_trips(platform):
    p = person()
    rec = HttpPlatform(platform + "/ok", TOKEN).fetch("population", p["key"], 1)
    assert rec is not None and rec.values["name"] == p["name"] and not p["name"].isascii()


@pytest.mark.parametrize(
    ("base", "token", "reason"),
    [
        ("/ok", "wrong", "HTTP 401"),
        ("/ok", "", "HTTP 401"),
        ("/e500", TOKEN, "HTTP 500"),
        ("/garbage", TOKEN, "不是 JSON"),
        ("/notdict", TOKEN, "应为 JSON 对象"),
        ("/badfield", TOKEN, "shoe_size"),
    ],
)
def test_a_failing_platform_is_unavailable_with_its_reason(platform, base, token, reason):
    p = person()
    with pytest.raises(SourceUnavailable) as exc:
        HttpPlatform(platform + base, token).fetch("population", p["key"], 1)
    assert exc.value.source == "population" and reason in exc.value.reason
    assert p["key"] not in str(exc.value)  # never whose data


def test_a_slow_platform_times_out_within_the_deadline(platform):
    p = person()
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as exc:
        HttpPlatform(platform + "/slow", TOKEN).fetch("population", p["key"], 0.2)
    assert "超时" in exc.value.reason and time.monotonic() - started < 0.9


def test_the_licence_library_waits_its_own_deadline(platform):
    """The e-license library's deadline comes with each call (--elicense-deadline-ms through
    ops/lookups.gather), not from the connector: the reason names the one it was given."""
    with pytest.raises(SourceUnavailable) as exc:
        HttpPlatform(platform + "/slow", TOKEN).licences(person()["key"], 0.25)
    assert exc.value.source == "elicense"
    assert exc.value.reason == "超时（0.25 秒内无答复）"


def test_a_malformed_licence_is_unavailable_without_its_values(platform):
    with contextlib.closing(EmbeddedRegistry(REGISTRY)) as reg:
        holder = next(x["key"] for x in registry_people() if reg.licences(x["key"], 1))
    with pytest.raises(SourceUnavailable) as exc:
        HttpPlatform(platform + "/badlicence", TOKEN).licences(holder, 1)
    assert exc.value.source == "elicense" and "valid_from" in exc.value.reason
    assert "yesterday" not in exc.value.reason


def test_nobody_listening_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(SourceUnavailable) as exc:
        HttpPlatform(f"http://127.0.0.1:{port}", TOKEN).fetch("population", "k", 0.5)
    assert "无法连接" in exc.value.reason


def test_https_verifies_the_certificate(platform):
    # A plain-HTTP server spoken to over TLS: the handshake fails, the source is unavailable.
    with pytest.raises(SourceUnavailable) as exc:
        HttpPlatform(platform.replace("http:", "https:") + "/ok", TOKEN).fetch("population", "k", 1)
    assert exc.value.source == "population"


@pytest.mark.parametrize("url", ["ftp://x/", "127.0.0.1:80", "http://"])
def test_a_bad_url_is_refused_at_once(url):
    with pytest.raises(ValueError, match="数据共享平台地址"):
        HttpPlatform(url)
