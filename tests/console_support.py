"""Shared by the console tests: a real server with its console on port 0 and principals of
every role, and a small HTTP client that keeps cookies and does not follow redirects."""

from __future__ import annotations

import http.client
import http.cookies
import re
import ssl
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.edge.auth import hash_token
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.support import CENTENARIAN, RULESETS, SENIOR_MATERIALS, decide_request, resident_id

CIVIL = "南海区民政局"  # the senior allowance's department
PRINCIPALS: list[dict[str, Any]] = [
    {"id": "win", "role": "window", "window_id": "W-GC-01", "jurisdiction": "440605",
     "items": ["*"]},
    {"id": "rev-civil", "role": "reviewer", "department": CIVIL, "jurisdiction": "4406"},
    {"id": "rev-civil-2", "role": "reviewer", "department": CIVIL, "jurisdiction": "4406"},
    {"id": "rev-market", "role": "reviewer", "department": "南海区市场监督管理局",
     "jurisdiction": "4406"},
    {"id": "sup", "role": "supervisor", "jurisdiction": "440605"},
]  # fmt: skip


def token(who: str) -> str:
    return f"token-of-{who}-0123456789"


def md(who: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token(who)}")]


def console_server(state: Path, **changes: Any) -> LiveServer:
    entries = [{**p, "token_sha256": hash_token(token(p["id"]))} for p in PRINCIPALS]
    creds = state / "credentials.yaml"
    state.mkdir(parents=True, exist_ok=True)
    creds.write_text(yaml.safe_dump({"principals": entries}, allow_unicode=True), "utf-8")
    settings = Settings(
        listen="127.0.0.1:0", rulesets=RULESETS, state_dir=state, credentials=creds,
        rate_per_second=0, watch_seconds=0, alert_interval_seconds=0,
        console_listen="127.0.0.1:0", **changes,
    )  # fmt: skip
    return LiveServer(settings, auth=True)


def console_url(server: LiveServer) -> str:
    assert server.running.console is not None
    return f"http://127.0.0.1:{server.running.console.port}"


CENTENARIAN_ID = resident_id("1915-06-01")  # the rules send this applicant to review


def review_case(approval: Any) -> str:
    """A MANUAL_REVIEW decision of the window: a senior allowance review task."""
    req = decide_request("GF00012000", CENTENARIAN, SENIOR_MATERIALS)
    req.facts["applicant"]["id_number"] = CENTENARIAN_ID
    d = approval.Decide(req, metadata=md("win")).decision
    assert d.outcome == pb.OUTCOME_MANUAL_REVIEW
    return str(d.decision_id)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


@dataclass
class Http:
    """One browser-like client of the console: cookies kept, redirects not followed."""

    base: str
    cookies: dict[str, str] = field(default_factory=dict)
    tls: ssl.SSLContext | None = None

    def _connection(self) -> http.client.HTTPConnection:
        parts = urllib.parse.urlsplit(self.base)
        if self.tls is not None:
            return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=20,
                                               context=self.tls)  # fmt: skip
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)

    def stream(self, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """An open response to read as it comes (close the connection when done)."""
        conn = self._connection()
        conn.request("GET", path, headers={"Cookie": self._cookie_header()})
        return conn, conn.getresponse()

    def _cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def request(
        self, method: str, path: str, form: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:  # fmt: skip
        conn = self._connection()
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = self._cookie_header()
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form, doseq=True).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body, sent)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
        finally:
            conn.close()
        for raw in resp.headers.get_all("Set-Cookie") or []:
            jar = http.cookies.SimpleCookie(raw)
            for name, morsel in jar.items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return Reply(resp.status, resp.headers, text)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict[str, Any], **kw: Any) -> Reply:
        return self.request("POST", path, form, **kw)

    def csrf(self, path: str = "/queue") -> str:
        """The CSRF token the page at `path` puts in its forms."""
        found = re.search(r'name="csrf" value="([^"]+)"', self.get(path).body)
        assert found, "no CSRF token on the page"
        return found.group(1)

    def sign_in(self, who: str) -> Reply:
        csrf = self.csrf("/signin")
        return self.post("/signin", {"csrf": csrf, "token": token(who)})
