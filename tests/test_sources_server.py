"""A real server process on a data-sharing platform (`--sources-url`): the platform is a real
http.server on 127.0.0.1 that the test starts, answering the docs/SOURCES.md protocol from the
real embedded registry behind a bearer token. The server decides with provenance from it, and
when the platform goes down answers as the item says (MANUAL_REVIEW naming the source, or
UNAVAILABLE), never APPROVE on the window's word alone."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from miaopi_client.client import Client, ClientError
from miaopi_server.settings import parse_args
from miaopi_server.sources.embedded import EmbeddedRegistry
from tests.conftest import ServerProcess
from tests.support import REGISTRY, RULESETS, SOURCED_AS_OF, registry_senior, sourced_senior_rule

TOKEN = "platform-token-7"
CODE = "GF00012000"
MATERIALS = ["id_card", "bank_account"]  # the hukou book comes from the e-license library


class Platform(BaseHTTPRequestHandler):
    """The protocol of docs/SOURCES.md over the embedded registry; 401 without the token."""

    registry: EmbeddedRegistry
    calls: list[str]

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.calls.append(self.path)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, body = 401, {"error": "unauthenticated"}
        elif self.path == "/api/v1/records":
            rec = self.registry.fetch(request["source"], request["key"], 1)
            status = 200
            body = (
                {"found": True, "record_id": rec.record_id, "values": rec.values}
                if rec
                else {"found": False}
            )
        elif self.path == "/api/v1/licences":
            status, body = 200, {"licences": [
                {
                    "licence_type": x.licence_type,
                    "holder_id": x.holder_id,
                    "number": x.number,
                    "valid_from": x.valid_from.isoformat(),
                    "valid_until": x.valid_until.isoformat() if x.valid_until else None,
                    "revoked": x.revoked,
                }
                for x in self.registry.licences(request["holder_id"], 1)
            ]}  # fmt: skip
        else:
            status, body = 404, {"error": "no such path"}
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


class RunningPlatform:
    def __init__(self, registry: EmbeddedRegistry) -> None:
        self.calls: list[str] = []
        handler = type("Handler", (Platform,), {"registry": registry, "calls": self.calls})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/api"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: nothing listens on its port any more (a refused connection)."""
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def platform() -> Iterator[RunningPlatform]:
    reg = EmbeddedRegistry(REGISTRY)
    p = RunningPlatform(reg)
    yield p
    p.stop()
    reg.close()


def server_on(platform: RunningPlatform, rules: Path, state: Path, *extra: str) -> ServerProcess:
    token = state.parent / "platform.token"
    token.write_text(TOKEN + "\n", encoding="utf-8")
    return ServerProcess(
        rules, state, "--sources-url", platform.url, "--sources-token-file", str(token), *extra
    )


def facts(key: str) -> dict[str, Any]:
    return {
        "applicant": {"name": "张三", "id_number": key},
        "application": {"date": SOURCED_AS_OF},
    }


@pytest.mark.slow
@pytest.mark.parametrize("on_unavailable", ["manual_review", "unavailable"])
def test_a_server_on_the_platform_decides_from_it_and_says_so_when_it_is_down(
    platform, tmp_path, on_unavailable
):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "senior.yaml").write_text(
        sourced_senior_rule(unavailable=on_unavailable), encoding="utf-8"
    )
    server = server_on(platform, rules, tmp_path / "state")
    try:
        started = server.wait_for("sources.platform")
        assert started["token"] is True and TOKEN not in json.dumps(server.events)
        p = registry_senior()
        with Client(server.target) as client:
            d = client.decide(CODE, facts(p["key"]), MATERIALS, consent="授权书-11")
            assert d["outcome"] == "APPROVE", d.get("reasons")
            origin = {o["path"]: o for o in d["provenance"]}
            assert origin["applicant.hukou_region"]["origin"] == "source"
            assert origin["applicant.hukou_region"]["source"] == "population"
            assert origin["applicant.hukou_region"]["record_id"] == p["record_id"]
            assert [u["material_id"] for u in d["e_licenses"]] == ["hukou_book"]
            assert sorted(platform.calls) == ["/api/v1/licences", "/api/v1/records"]

            platform.stop()
            # The window now types the hukou region itself: still no APPROVE unverified.
            down = facts(p["key"])
            down["applicant"]["hukou_region"] = "440605"
            if on_unavailable == "manual_review":
                d = client.decide(CODE, down, [*MATERIALS, "hukou_book"], consent="授权书-12")
                assert d["outcome"] == "MANUAL_REVIEW"
                rules_named = {r["rule_id"] for r in d["reasons"]}
                assert "data:unavailable:population" in rules_named
                lookup = d["sourced"]["lookups"][0]
                assert (lookup["status"], lookup["source"]) == ("unavailable", "population")
                assert "无法连接" in lookup["reason"]
            else:
                with pytest.raises(ClientError) as err:
                    client.decide(CODE, down, [*MATERIALS, "hukou_book"], consent="授权书-12")
                assert err.value.code == "UNAVAILABLE" and "population" in err.value.message
        logged = json.dumps(server.events, ensure_ascii=False)
        assert p["key"] not in logged and p["name"] not in logged  # no personal data in logs
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--sources-url", "ftp://example.org"], "http(s)://"),
        (["--sources-url", "http://127.0.0.1:9", "--registry", str(REGISTRY)], "not both"),
        (["--sources-ca", "ca.pem"], "need --sources-url"),
        (["--sources-url", "http://127.0.0.1:9", "--sources-token-file", "empty"], "one token"),
        (["--sources-url", "http://127.0.0.1:9", "--sources-token-file", "nope"], "nope"),
    ],
)
def test_shared_data_options_that_do_not_go_together_refuse_to_start(tmp_path, extra, says):
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "miaopi_server.app",
            "--listen",
            "127.0.0.1:0",
            "--rulesets",
            str(RULESETS),
            "--state-dir",
            str(tmp_path / "state"),
            "--insecure-no-auth",
            *extra,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert says in proc.stderr


def test_settings_take_the_platform_options():
    s = parse_args(
        [
            "--sources-url",
            "https://share.example/api",
            "--sources-token-file",
            "t",
            "--sources-ca",
            "ca.pem",
            "--elicense-deadline-ms",
            "1500",
        ]
    )
    assert (s.sources_url, s.sources_token_file, s.sources_ca, s.elicense_deadline_ms) == (
        "https://share.example/api",
        Path("t"),
        Path("ca.pem"),
        1500,
    )
    assert parse_args([]).sources_url == "" and parse_args([]).elicense_deadline_ms == 1000
