"""The web console over plain HTTP on a real server (real store, real engine): sign-in with
the gRPC credentials, the session cookie's flags, headers, CSRF, and the same role checks
and error messages as ReviewService, shown on the page (field errors next to the fields)."""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import io
import ipaddress
import json
import re
import sqlite3
import ssl
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi.v1 import review_pb2 as rpb
from miaopi.v1 import review_pb2_grpc as rpb_grpc
from miaopi_client.cli import main as cli
from miaopi_server.clock import SHANGHAI
from miaopi_server.edge.console import review_pages, supervision
from miaopi_server.edge.console.supervision import SHOWN_ALERTS
from tests.casework_support import wait_until
from tests.conftest import LiveServer
from tests.console_support import (
    CENTENARIAN_ID,
    Http,
    console_server,
    console_url,
    md,
    review_case,
    token,
)
from tests.support import DISABILITY, DISABILITY_MATERIALS, decide_request, with_facts


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    running = console_server(tmp_path_factory.mktemp("console"))
    yield running
    running.stop()


def signed_in(server: LiveServer, who: str) -> Http:
    client = Http(console_url(server))
    reply = client.sign_in(who)
    assert (reply.status, reply.location) == (303, "/"), reply.body
    return client


def claimed_case(server: LiveServer, approval: Any, who: str) -> tuple[Http, str, str]:
    """A case for review, claimed through the console by `who`: (their client, its CSRF
    token, the case's decision id)."""
    decision_id = review_case(approval)
    client = signed_in(server, who)
    csrf = client.csrf()
    assert client.post(f"/cases/{decision_id}/claim", {"csrf": csrf}).status == 303
    return client, csrf, decision_id


def text(reply: Any) -> str:
    """The page's words, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", reply.body)).split())


def state_of(review: Any, decision_id: str) -> str:
    got = review.GetTask(rpb.GetTaskRequest(decision_id=decision_id), metadata=md("sup"))
    return str(got.task.state)


class TestSignIn:
    def test_a_token_of_the_credentials_file_signs_in_with_a_strict_cookie(
        self, server: LiveServer
    ) -> None:
        client = Http(console_url(server))
        csrf = client.csrf("/signin")
        reply = client.post("/signin", {"csrf": csrf, "token": token("rev-civil")})
        assert reply.status == 303
        cookie = next(c for c in reply.headers.get_all("Set-Cookie") if "miaopi_session=" in c)
        flags = {f.strip().split("=")[0].lower() for f in cookie.split(";")}
        assert {"httponly", "samesite", "path"} <= flags and "secure" not in flags  # no TLS
        assert "SameSite=Strict" in cookie
        assert "rev-civil" in client.get("/queue").body

    def test_an_unknown_token_is_refused_with_the_api_words(self, server: LiveServer) -> None:
        client = Http(console_url(server))
        csrf = client.csrf("/signin")
        reply = client.post("/signin", {"csrf": csrf, "token": "not-a-token"})
        assert reply.status == 401
        assert "未认证：请提供有效凭证" in text(reply)
        assert "miaopi_session" not in client.cookies

    def test_pages_need_a_session_and_sign_out_ends_it(self, server: LiveServer) -> None:
        anonymous = Http(console_url(server))
        assert anonymous.get("/queue").location == "/signin"
        client = signed_in(server, "rev-civil")
        session = client.cookies["miaopi_session"]
        assert client.get("/queue").status == 200
        assert client.post("/signout", {"csrf": client.csrf()}).location == "/signin"
        replay = Http(console_url(server), {"miaopi_session": session})
        assert replay.get("/queue").location == "/signin"  # the old cookie is dead

    def test_every_page_carries_a_strict_content_security_policy(self, server: LiveServer) -> None:
        client = signed_in(server, "sup")
        for path in ("/signin", "/queue", "/supervision", "/static/console.css"):
            reply = client.get(path)
            assert reply.status == 200, path
            csp = reply.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            assert "unsafe-inline" not in csp
            assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert "<script>" not in client.get("/supervision").body  # no inline script
        assert ' style="' not in client.get("/supervision").body  # nor inline style


class TestCsrf:
    def test_a_post_without_the_token_changes_nothing(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        client = signed_in(server, "rev-civil")
        reply = client.post(f"/cases/{decision_id}/claim", {})
        assert reply.status == 403 and "CSRF" in reply.body
        wrong = client.post(f"/cases/{decision_id}/claim", {"csrf": "forged"})
        assert wrong.status == 403
        assert state_of(review, decision_id) == "open"

    def test_a_post_from_another_origin_is_refused(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        client = signed_in(server, "rev-civil")
        csrf = client.csrf()
        reply = client.post(
            f"/cases/{decision_id}/claim", {"csrf": csrf},
            headers={"Origin": "http://evil.example"},
        )  # fmt: skip
        assert reply.status == 403
        assert state_of(review, decision_id) == "open"
        assert client.post(f"/cases/{decision_id}/claim", {"csrf": csrf}).status == 303
        assert state_of(review, decision_id) == "claimed"

    def test_refusals_are_logged_by_route_and_sampled(self, tmp_path: Path) -> None:
        """Anyone may POST before signing in: a refusal's line names the route, never the
        path sent (6,000 characters here), and a burst writes at most 20 lines."""
        fresh = console_server(tmp_path)  # its own sampler, untouched by other tests
        try:
            client = Http(console_url(fresh))
            with capture_logs() as logs:
                for _ in range(30):
                    assert client.post(f"/cases/{'x' * 6000}/claim", {}).status == 403
                assert client.post("/" + "y" * 6000, {}).status == 403
        finally:
            fresh.stop()
        refused = [e for e in logs if e["event"] == "console.csrf_refused"]
        routes = [e["route"] for e in refused]
        assert routes == ["/cases/{decision_id}/{action}"] * 20 + ["(no route)"]
        assert not any(e["signed_in"] for e in refused)
        written = json.dumps(logs, default=str)
        assert "x" * 64 not in written and "y" * 64 not in written

    def test_the_sign_in_form_needs_its_own_token(self, server: LiveServer) -> None:
        client = Http(console_url(server))
        reply = client.post("/signin", {"token": token("sup")})
        assert reply.status == 403 and "miaopi_session" not in client.cookies


class TestRoleChecks:
    """The same refusals, in the same words, as the gRPC API."""

    def test_a_window_cannot_open_the_supervision_page(self, server: LiveServer) -> None:
        client = signed_in(server, "win")
        for path in ("/supervision", "/supervision/kpis.csv", "/supervision/alerts"):
            reply = client.get(path)
            assert reply.status == 403, path
            assert "无权执行：角色 window 不能调用" in text(reply)

    def test_a_window_cannot_claim(self, server: LiveServer, stubs: tuple[Any, Any]) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        client = signed_in(server, "win")
        assert "秒批" in client.get(f"/cases/{decision_id}").body  # its own case: readable
        reply = client.post(f"/cases/{decision_id}/claim", {"csrf": client.csrf()})
        assert reply.status == 403
        assert "无权执行：角色 window 不能调用 ClaimTask" in text(reply)
        assert state_of(review, decision_id) == "open"

    def test_a_reviewer_of_another_department_cannot_see_the_case(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, _ = stubs
        decision_id = review_case(approval)
        client = signed_in(server, "rev-market")
        reply = client.get(f"/cases/{decision_id}")
        assert reply.status == 403 and "该办件不在授权范围内" in text(reply)
        assert decision_id not in client.get("/queue").body
        assert CENTENARIAN_ID not in reply.body

    def test_an_unknown_case_is_not_found(self, server: LiveServer) -> None:
        reply = signed_in(server, "rev-civil").get("/cases/no-such-decision")
        assert reply.status == 404

    def test_a_task_claimed_by_another_cannot_be_claimed(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        review.ClaimTask(rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md("rev-civil"))
        client = signed_in(server, "rev-civil-2")
        reply = client.post(f"/cases/{decision_id}/claim", {"csrf": client.csrf()})
        assert reply.status == 409
        with pytest.raises(grpc.RpcError) as api:
            review.ClaimTask(
                rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md("rev-civil-2")
            )
        assert api.value.details() in text(reply)  # the API's message, word for word


class TestDecideForm:
    def test_every_missing_part_is_shown_next_to_its_field(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        client, csrf, decision_id = claimed_case(server, approval, "rev-civil")
        reply = client.post(
            f"/cases/{decision_id}/decide", {"csrf": csrf, "outcome": "REJECT", "reasons": ""}
        )
        assert reply.status == 400
        for field, words in (("reasons", "必填：决定理由"), ("legal_basis", "法律依据")):
            shown = re.search(rf'id="decide-{field}-error" class="error">([^<]+)<', reply.body)
            assert shown and words in shown.group(1), field
        assert 'aria-invalid="true" aria-describedby="decide-reasons-error"' in reply.body
        assert state_of(review, decision_id) == "claimed"

    def test_an_override_needs_a_justification_then_is_sealed(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        client = signed_in(server, "rev-civil")
        csrf = client.csrf()
        client.post(f"/cases/{decision_id}/claim", {"csrf": csrf})
        form = {
            "csrf": csrf, "outcome": "REJECT", "reasons": "户籍存疑：需核实",
            "legal_basis": "《中华人民共和国行政许可法》第三十八条",
        }  # fmt: skip
        refused = client.post(f"/cases/{decision_id}/decide", form)
        assert refused.status == 400
        assert re.search(r'id="decide-justification-error"', refused.body)
        assert "户籍存疑：需核实" in refused.body  # what was typed is kept
        done = client.post(
            f"/cases/{decision_id}/decide", {**form, "justification": "现场核验户口簿不符"}
        )
        assert done.location == f"/cases/{decision_id}"
        page = text(client.get(done.location))
        assert "决定已作出并记入审计链" in page and "推翻规则结论" in page
        assert "户籍存疑：需核实" in page and "现场核验户口簿不符" in page  # history
        got = review.GetTask(rpb.GetTaskRequest(decision_id=decision_id), metadata=md("sup"))
        assert (got.task.state, got.task.overridden) == ("decided", True)


class TestFormBodies:
    """A POST whose body is not a form the console's pages send is refused (400) before the
    CSRF check and changes nothing. Before, aiohttp's request.post() made %FF a U+FFFD that
    was recorded as the reviewer's reason; raw non-UTF-8 bytes, an unknown charset and a
    broken multipart body were HTTP 500s (console.crashed); a multipart file field's repr was
    recorded as a reason."""

    def test_bodies_that_are_not_text_or_not_a_form(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        import http.client

        approval, review = stubs
        client, csrf, decision_id = claimed_case(server, approval, "rev-civil")
        form = "application/x-www-form-urlencoded"
        fields = f"csrf={csrf}&outcome=APPROVE&reasons=".encode()
        part = b'--B\r\nContent-Disposition: form-data; name="%s"%s\r\n\r\n%s\r\n'
        multipart = b"".join(
            part % (name.encode(), extra, value)
            for name, extra, value in (
                ("csrf", b"", csrf.encode()), ("outcome", b"", b"APPROVE"),
                ("reasons", b'; filename="r.txt"', b"abc"),
            )
        ) + b"--B--\r\n"  # fmt: skip
        bodies = [
            (form, fields + b"%FF%FE"),
            (form, fields + b"\xff\xfe"),
            (form + "; charset=bogus", fields + b"x"),
            ("multipart/form-data; boundary=B", multipart),
            ("multipart/form-data; boundary=B", multipart[:40]),
            ("multipart/form-data", b"x"),
        ]
        port = urllib.parse.urlsplit(client.base).port
        with capture_logs() as logs:
            for content_type, body in bodies:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                conn.request("POST", f"/cases/{decision_id}/decide", body, {
                    "Content-Type": content_type, "Cookie": client._cookie_header(),
                })  # fmt: skip
                reply = conn.getresponse()
                assert reply.status == 400, (content_type, body)
                assert "表单无法读取" in reply.read().decode()
                conn.close()
        assert not [e for e in logs if e["event"] == "console.crashed"]
        assert state_of(review, decision_id) == "claimed"  # nothing decided
        reply = client.post(
            f"/cases/{decision_id}/decide",
            {"csrf": csrf, "outcome": "APPROVE", "reasons": "核查无误\n材料齐全"},
        )
        assert reply.status == 303 and state_of(review, decision_id) == "decided"


class TestSuspendAndEscalate:
    def test_the_assignee_suspends_for_an_art45_ground_and_resumes(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        client = signed_in(server, "rev-civil")
        csrf = client.csrf()
        client.post(f"/cases/{decision_id}/claim", {"csrf": csrf})
        page = client.get(f"/cases/{decision_id}").body
        assert '<option value="expert_review" >专家评审</option>' in page
        bad = client.post(f"/cases/{decision_id}/suspend", {"csrf": csrf, "reason": "lunch"})
        assert bad.status == 400 and 'id="suspend-reason-error"' in bad.body
        assert state_of(review, decision_id) == "claimed"
        done = client.post(
            f"/cases/{decision_id}/suspend",
            {"csrf": csrf, "reason": "expert_review", "note": "送专家评审"},
        )
        assert done.status == 303 and state_of(review, decision_id) == "suspended"
        assert "已中止计时" in text(client.get(done.location))
        assert client.post(f"/cases/{decision_id}/resume", {"csrf": csrf}).status == 303
        assert state_of(review, decision_id) == "claimed"

    def test_a_supervisor_escalates_with_a_note_and_a_reviewer_cannot(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        reviewer = signed_in(server, "rev-civil")
        assert f"/cases/{decision_id}/escalate" not in reviewer.get(f"/cases/{decision_id}").body
        refused = reviewer.post(f"/cases/{decision_id}/escalate",
                                {"csrf": reviewer.csrf(), "note": "快办"})  # fmt: skip
        assert refused.status == 403
        supervisor = signed_in(server, "sup")
        csrf = supervisor.csrf()
        empty = supervisor.post(f"/cases/{decision_id}/escalate", {"csrf": csrf, "note": " "})
        assert empty.status == 400 and 'id="escalate-note-error"' in empty.body
        done = supervisor.post(
            f"/cases/{decision_id}/escalate", {"csrf": csrf, "note": "请于明日前办结"}
        )
        assert done.status == 303
        assert "已督办 1 次" in text(supervisor.get(done.location))
        got = review.GetTask(rpb.GetTaskRequest(decision_id=decision_id), metadata=md("sup"))
        assert got.task.escalations == 1


class TestCaseView:
    def test_the_case_shows_reasons_basis_facts_and_history(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, review = stubs
        decision_id = review_case(approval)
        review.ClaimTask(rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md("rev-civil"))
        client = signed_in(server, "rev-civil")
        page = text(client.get(f"/cases/{decision_id}"))
        assert "规则决定：转人工审核" in page
        assert "法律依据：《" in page  # each reason's citation
        assert "读取的事实" in page and "applicant.age" in page
        assert "applicant.id_number" in page and "窗口录入" in page  # facts and provenance
        assert "系统计算" in page  # derived facts
        assert "rev-civil 认领：待认领 → 办理中" in page


class TestNotice:
    def test_the_case_prints_its_notice_as_a_page_and_a_verifiable_pdf(
        self, server: LiveServer, stubs: tuple[Any, Any], tmp_path: Path
    ) -> None:
        approval, _ = stubs
        decision_id = review_case(approval)
        client = signed_in(server, "rev-civil")
        assert f'href="/cases/{decision_id}/notice.pdf"' in client.get(f"/cases/{decision_id}").body
        page = client.get(f"/cases/{decision_id}/notice")
        assert page.status == 200 and "受理通知书" in text(page) and decision_id in page.body
        assert CENTENARIAN_ID not in page.body  # the ID number is masked on the notice
        assert '<link rel="stylesheet" href="/notice.css"' in page.body  # no inline style (CSP)
        assert "@page" in client.get("/notice.css").body
        conn, resp = client.stream(f"/cases/{decision_id}/notice.pdf")
        try:
            assert resp.status == 200 and resp.getheader("Content-Type") == "application/pdf"
            pdf = tmp_path / "notice.pdf"
            pdf.write_bytes(resp.read())
        finally:
            conn.close()
        out = io.StringIO()
        with capture_logs(), contextlib.redirect_stdout(out):
            code = cli(
                ["--token", token("win"), "verify-receipt", str(pdf), "--target", server.target]
            )
        assert (code, out.getvalue().startswith("receipt OK")) == (0, True), out.getvalue()

    def test_a_reviewer_of_another_department_cannot_print_it(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        approval, _ = stubs
        decision_id = review_case(approval)
        page = signed_in(server, "rev-market").get(f"/cases/{decision_id}/notice")
        assert page.status == 403 and "受理通知书" not in page.body


class TestSupervision:
    def test_the_csv_export_is_what_the_cli_prints(
        self, server: LiveServer, stubs: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
    ) -> None:
        approval, _ = stubs
        review_case(approval)
        month = dt.datetime.now(SHANGHAI).strftime("%Y-%m")
        client = signed_in(server, "sup")
        reply = client.get(f"/supervision/kpis.csv?month={month}&by=item")
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in reply.headers["Content-Disposition"]
        assert reply.body.startswith("\ufeffrank,key,cases,instant,")
        capsys.readouterr()
        argv = ["--target", server.target, "--token", token("sup"), "kpi", "--month", month,
                "--by", "item", "--csv"]  # fmt: skip
        assert cli(argv) == 0
        printed = capsys.readouterr().out
        assert reply.body.removeprefix("\ufeff") == printed
        assert "GF00012000" in printed

    def test_a_bad_month_is_shown_next_to_the_month_field(self, server: LiveServer) -> None:
        reply = signed_in(server, "sup").get("/supervision?month=2026-13")
        assert reply.status == 400
        assert re.search(r'id="k-month-error" class="error">[^<]+<', reply.body)

    def test_the_alert_stream_sends_stored_alerts_as_events(
        self, server: LiveServer, stubs: tuple[Any, Any]
    ) -> None:
        from miaopi_server.ops.alerts import scan

        approval, review = stubs
        decision_id = review_case(approval)
        review.ClaimTask(rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md("rev-civil"))
        review.DecideTask(
            rpb.DecideTaskRequest(
                decision_id=decision_id, outcome=2, reasons=["不符合"],
                legal_basis=["行政许可法第三十八条"], justification="核验不符",
            ),
            metadata=md("rev-civil"),
        )  # fmt: skip
        scan(server.running.store, dt.datetime.now(dt.UTC))
        client = signed_in(server, "sup")
        conn, resp = client.stream("/supervision/alerts?after=0")
        try:
            assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
            seen = ""
            while decision_id not in seen:  # the stream stays open: read up to our alert
                line = resp.readline().decode()
                assert line, "the stream ended"
                seen += line
        finally:
            conn.close()
        assert "event: alert" in seen and '"kind": "override"' in seen

    def test_the_page_reads_only_the_latest_alerts_of_its_scope(
        self, server: LiveServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """However long the history, a page load reads the latest SHOWN_ALERTS alerts the
        supervisor may watch (from a cursor just before them), not every stored one."""
        store = server.running.store
        with contextlib.closing(sqlite3.connect(store.path, timeout=10)) as conn, conn:
            for i in range(2 * SHOWN_ALERTS):  # the supervisor's 440605, and 440604 between
                for region in ("440605", "440604"):
                    conn.execute(
                        "INSERT INTO alerts (decision_id, kind, item_code, department,"
                        " jurisdiction, due_on, raised_at) VALUES (?, 'due_soon', 'GF00012000',"
                        " '南海区民政局', ?, '2026-12-01', '2026-11-20T02:00:00.000000Z')",
                        (f"history-{region}-{i:03d}", region),
                    )
            ours = [r[0] for r in conn.execute(
                "SELECT seq FROM alerts WHERE jurisdiction LIKE '440605%' ORDER BY seq"
            )]  # fmt: skip
        read: list[int] = []
        reading = store.alerts_after

        def counted(after_seq: int, jurisdiction: str, limit: int) -> list[Any]:
            rows = reading(after_seq, jurisdiction, limit)
            read.extend(a.seq for a in rows)
            return rows

        monkeypatch.setattr(store, "alerts_after", counted)
        page = signed_in(server, "sup").get("/supervision")
        assert page.status == 200
        shown = [int(s) for s in re.findall(r'data-seq="(\d+)"', page.body)]
        assert shown == list(reversed(ours[-SHOWN_ALERTS:]))  # newest first
        assert "history-440604" not in page.body  # another jurisdiction's
        assert sorted(read) == ours[-SHOWN_ALERTS:]  # read nothing older
        assert f'data-after="{ours[-1]}"' in page.body  # the stream goes on after them


QUIET = f"/supervision/alerts?after={2**62}"  # a stream with no stored alert to send


def read_to_the_end(resp: Any) -> str:
    """Everything the stream sends until it ends (the socket's 20 s timeout if it never does)."""
    got = b""
    while line := resp.readline():
        got += line
    return got.decode()


class TestAlertStreamLifetime:
    def test_the_stream_ends_when_its_session_signs_out(self, server: LiveServer) -> None:
        client = signed_in(server, "sup")
        csrf = client.csrf("/supervision")
        conn, resp = client.stream(QUIET)
        try:
            assert resp.status == 200 and resp.readline() == b"retry: 2000\n"
            assert client.post("/signout", {"csrf": csrf}).location == "/signin"
            assert read_to_the_end(resp) == "\n"  # the blank line after retry, then the end
        finally:
            conn.close()

    def test_a_fifth_stream_of_one_session_is_refused(self, server: LiveServer) -> None:
        client, other = signed_in(server, "sup"), signed_in(server, "sup")
        streams = [client.stream(QUIET) for _ in range(4)]
        try:
            assert [resp.status for _, resp in streams] == [200] * 4
            refused = client.get(QUIET)
            assert refused.status == 429 and "4 个实时提醒" in refused.body
            conn, resp = other.stream(QUIET)  # another sign-in has its own four
            assert resp.status == 200
            conn.close()
            streams.pop()[0].close()  # a tab closed: its place is free again

            def admitted() -> bool:
                conn, resp = client.stream(QUIET)
                streams.append((conn, resp))
                return resp.status == 200

            wait_until(admitted)
        finally:
            for conn, _ in streams:
                conn.close()

    def test_a_stream_ends_after_its_time(
        self, server: LiveServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(supervision, "STREAM_SECONDS", 0.5)
        conn, resp = signed_in(server, "sup").stream(QUIET)
        try:
            assert resp.status == 200 and read_to_the_end(resp) == "retry: 2000\n\n"
        finally:
            conn.close()

    @pytest.mark.parametrize("raw", ["²", str(2**63), "9" * 5000, "-1"])
    def test_a_cursor_out_of_int64_is_refused_before_the_stream(
        self, server: LiveServer, raw: str
    ) -> None:
        client = signed_in(server, "sup")
        with capture_logs() as logs:
            by_query = client.get(f"/supervision/alerts?after={urllib.parse.quote(raw)}")
            # "²" as one Latin-1 byte, as a header carries it
            by_header = client.get("/supervision/alerts", headers={"Last-Event-ID": raw})
        assert (by_query.status, by_header.status) == (400, 400), by_query.body
        says = f"须为 0 至 {2**63 - 1} 的整数"
        assert says in by_query.body and says in by_header.body
        assert not [e for e in logs if e["event"].startswith("console.")]

    def test_the_largest_cursor_is_a_stream(self, server: LiveServer) -> None:
        conn, resp = signed_in(server, "sup").stream(f"/supervision/alerts?after={2**63 - 1}")
        try:
            assert resp.status == 200 and resp.readline() == b"retry: 2000\n"
        finally:
            conn.close()


def test_no_personal_data_reaches_the_logs(server: LiveServer, stubs: tuple[Any, Any]) -> None:
    approval, _ = stubs
    with capture_logs() as logs:
        decision_id = review_case(approval)
        client = signed_in(server, "rev-civil")
        client.get(f"/cases/{decision_id}")
        client.post(f"/cases/{decision_id}/claim", {"csrf": client.csrf()})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print(logs)
    assert any(e["event"] == "console.signed_in" for e in logs)
    assert CENTENARIAN_ID not in out.getvalue() and token("rev-civil") not in out.getvalue()


def test_with_tls_the_console_is_https_and_its_cookie_secure(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )  # fmt: skip
    server = console_server(
        tmp_path / "state", tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem"
    )
    try:
        trust = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        client = Http(console_url(server).replace("http:", "https:"), tls=trust)
        assert "使用数字证书登录" not in client.get("/signin").body  # no --tls-client-ca
        reply = client.sign_in("sup")
        assert reply.status == 303
        cookie = next(c for c in reply.headers.get_all("Set-Cookie") if "miaopi_session=" in c)
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.get("/supervision").status == 200
    finally:
        server.stop()


def test_the_queue_filters_by_item_in_the_query_and_pages_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The item filter is ListTasks' item_code (a matching task beyond the first page of all
    tasks is not lost), and "更多" follows next_page_token, page after page."""
    monkeypatch.setattr(review_pages, "QUEUE_PAGE", 2)
    server = console_server(tmp_path / "state")
    try:
        with grpc.insecure_channel(server.target) as ch:
            approval, review = pb_grpc.ApprovalServiceStub(ch), rpb_grpc.ReviewServiceStub(ch)
            veteran = with_facts(DISABILITY, disability__certificate_type="veteran_card")
            materials = [*DISABILITY_MATERIALS[:3], "veteran_card", "household_certificate"]
            disability = []  # opened first: the first page of every task is theirs
            for _ in range(3):
                got = approval.Decide(
                    decide_request("GF00034001", veteran, materials), metadata=md("win")
                )
                assert got.decision.outcome == pb.OUTCOME_MANUAL_REVIEW
                disability.append(got.decision.decision_id)
            senior = [review_case(approval) for _ in range(3)]
            # The servicer: only the item's tasks, its own pages.
            first = review.ListTasks(
                rpb.ListTasksRequest(item_code="GF00012000", page_size=2), metadata=md("sup")
            )
            assert [t.decision_id for t in first.tasks] == senior[:2] and first.next_page_token
        client = signed_in(server, "sup")

        def pages(path: str) -> list[list[str]]:
            """The decision ids of each page, following "更多" to the end."""
            seen: list[list[str]] = []
            while path:
                reply = client.get(path)
                assert reply.status == 200, reply.body
                seen.append(re.findall(r'data-decision="([^"]+)"', reply.body))
                more = re.search(r'<a href="([^"]+)" rel="next">更多</a>', reply.body)
                path = html.unescape(more.group(1)) if more else ""
                assert (len(seen) > 1) == ("第一页" in reply.body)
            return seen

        assert pages("/queue?item=GF00012000") == [senior[:2], senior[2:]]
        assert pages("/queue?item=GF00034001&state=open") == [disability[:2], disability[2:]]
        everything = disability + senior
        assert pages("/queue") == [everything[0:2], everything[2:4], everything[4:6]]
        bad = client.get("/queue?item=GF00012000&page=not-a-token")
        assert bad.status == 400 and 'id="f-page-error"' in bad.body
        assert "无效的分页标记" in bad.body and 'href="/queue?item=GF00012000"' in bad.body
    finally:
        server.stop()
