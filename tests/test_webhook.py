"""The escalation webhook against a real local HTTP receiver: a delivery signed with
HMAC-SHA256 over the exact body (verified here), carrying codes, dates and the note but no
personal data; a 500 then a success (retried); a timeout (retried); a restart with a delivery
pending (delivered by the next process, from the outbox); `--workers 2` sending each
notification once; options checked at start."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import io
import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from structlog.testing import capture_logs

from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi.v1 import review_pb2 as rpb
from miaopi.v1 import review_pb2_grpc as rpb_grpc
from miaopi_server.app import main as server_main
from miaopi_server.ops import logs
from miaopi_server.settings import Settings
from tests.casework_support import review_case, wait_until
from tests.conftest import LiveServer, ServerProcess
from tests.support import RULESETS

SECRET = b"webhook-secret-of-the-test-0123456789"


class Receiver:
    """A local HTTP server recording every POST; `answers` says what the next ones get (a
    status, "slow": answer 200 after `slow_seconds`, past the client's timeout, or "cut":
    close the connection in the middle of the answer's body)."""

    def __init__(
        self, answers: list[Any] | None = None, slow_seconds: float = 2.0, port: int = 0
    ) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.gets: list[str] = []
        self.answers = list(answers or [])
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.got.append((dict(self.headers.items()), body))
                    answer = receiver.answers.pop(0) if receiver.answers else 200
                if answer == "slow":
                    time.sleep(slow_seconds)
                    answer = 200
                if answer == "cut":  # promises a body, sends part of it, hangs up
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b'{"ok":')
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_response(answer)
                if answer in (301, 302, 303, 307, 308):
                    self.send_header("Location", "/moved")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # where a followed redirect would land
                with receiver.lock:
                    receiver.gets.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/miaopi?k=1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(b) for _, b in self.got]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook.secret"
    path.write_bytes(SECRET + b"\n")
    return path


def hook_settings(state: Path, url: str, secret_file: Path, **kw: Any) -> Settings:
    return Settings(
        listen="127.0.0.1:0", rulesets=RULESETS, state_dir=state, watch_seconds=0,
        alert_interval_seconds=0, webhook_url=url, webhook_secret_file=secret_file,
        webhook_timeout_seconds=kw.pop("timeout", 1.0), webhook_retry_seconds=0.1, **kw,
    )  # fmt: skip


def escalate(target: str, note: str = "请三日内办结") -> tuple[str, int]:
    with grpc.insecure_channel(target) as ch:
        approval, review = pb_grpc.ApprovalServiceStub(ch), rpb_grpc.ReviewServiceStub(ch)
        decision_id = review_case(approval)
        done = review.EscalateTask(rpb.EscalateTaskRequest(decision_id=decision_id, note=note))
        return decision_id, int(done.alert_seq)


def outbox(db: Path) -> list[tuple[int, int, str, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT alert_seq, attempts, delivered_at, last_error FROM webhook_outbox ORDER BY id"
        ).fetchall()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_a_signed_delivery_without_personal_data(
    tmp_path: Path, secret_file: Path, receiver: Receiver
) -> None:
    live = LiveServer(hook_settings(tmp_path, receiver.url, secret_file))
    try:
        decision_id, seq = escalate(live.target, "群众反映久拖未办，请加快")
        wait_until(lambda: len(receiver.got) == 1)
        headers, body = receiver.got[0]
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Miaopi-Signature"], expected)
        assert headers["X-Miaopi-Delivery"] == str(seq)
        assert headers["Content-Type"].startswith("application/json")
        sent = json.loads(body)
        assert sent["alert_kind"] == "escalated" and sent["alert_seq"] == seq
        assert sent["decision_id"] == decision_id and sent["item_code"] == "GF00012000"
        assert sent["department"] == "南海区民政局" and sent["note"] == "群众反映久拖未办，请加快"
        assert sent["promised_due_date"] and sent["statutory_due_date"]
        assert set(sent) == {
            "alert_kind", "alert_seq", "raised_at", "decision_id", "transition_id", "task_kind",
            "state", "item_code", "department", "jurisdiction", "promised_due_date",
            "statutory_due_date", "escalations", "note", "recipients",
        }  # fmt: skip
        facts = json.dumps(sent, ensure_ascii=False)
        assert "1915" not in facts and "id_number" not in facts and "applicant" not in facts
        wait_until(lambda: outbox(live.running.store.path)[0][2] != "")
        assert outbox(live.running.store.path)[0][:2] == (seq, 1)
        time.sleep(0.5)  # more passes: nothing is sent again
        assert len(receiver.got) == 1
    finally:
        live.stop()


def test_a_failure_then_a_success_is_retried(tmp_path: Path, secret_file: Path) -> None:
    receiver = Receiver([500, 503])
    live = LiveServer(hook_settings(tmp_path, receiver.url, secret_file))
    try:
        _, seq = escalate(live.target)
        wait_until(lambda: len(receiver.got) == 3)
        wait_until(lambda: outbox(live.running.store.path)[0][2] != "")
        assert outbox(live.running.store.path)[0][:2] == (seq, 3)
        assert len({b for _, b in receiver.got}) == 1  # the same body each time
    finally:
        live.stop()
        receiver.close()


def test_a_timeout_is_retried(tmp_path: Path, secret_file: Path) -> None:
    receiver = Receiver(["slow"], slow_seconds=2.0)
    live = LiveServer(hook_settings(tmp_path, receiver.url, secret_file, timeout=0.5))
    try:
        _, seq = escalate(live.target)
        wait_until(lambda: outbox(live.running.store.path)[0][2] != "")
        row = outbox(live.running.store.path)[0]
        assert row[:2] == (seq, 2)
        # At least once: the receiver saw the slow attempt too, and deduplicates by seq.
        assert [h["X-Miaopi-Delivery"] for h, _ in receiver.got] == [str(seq), str(seq)]
    finally:
        live.stop()
        receiver.close()


@pytest.mark.parametrize(
    ("answer", "error"), [(301, "HTTP 301"), (303, "HTTP 303"), ("cut", "IncompleteRead")]
)
def test_a_redirect_or_a_broken_answer_is_a_failed_attempt(
    tmp_path: Path, secret_file: Path, answer: Any, error: str
) -> None:
    """A redirect is not followed (urllib would re-send it as a GET without the body and
    count it delivered); an answer cut short fails that row's attempt, and it is retried."""
    receiver = Receiver([answer])
    live = LiveServer(hook_settings(tmp_path, receiver.url, secret_file))
    try:
        with capture_logs() as logged:
            _, seq = escalate(live.target)
            wait_until(lambda: outbox(live.running.store.path)[0][2] != "")
        assert outbox(live.running.store.path)[0][:2] == (seq, 2)
        failed = [(e["attempt"], e["error"]) for e in logged if e["event"] == "webhook.failed"]
        assert failed == [(1, error)]
        assert not [e for e in logged if e["event"] == "webhook.pass_failed"]
        assert receiver.gets == [] and len(receiver.got) == 2
    finally:
        live.stop()
        receiver.close()


def test_a_pending_delivery_survives_a_restart(tmp_path: Path, secret_file: Path) -> None:
    down = Receiver()
    url = down.url
    down.close()  # nothing listens there: connections are refused
    first = LiveServer(hook_settings(tmp_path, url, secret_file))
    try:
        _, seq = escalate(first.target)
        db = first.running.store.path
        wait_until(lambda: outbox(db)[0][1] >= 2)  # tried, and retried
        assert outbox(db)[0][2] == "" and "refused" in outbox(db)[0][3].lower()
    finally:
        first.stop()
    up = Receiver(port=int(url.split(":")[2].split("/")[0]))  # the receiver is back
    again = LiveServer(hook_settings(tmp_path, url, secret_file))
    try:
        wait_until(lambda: len(up.got) == 1)
        assert up.bodies()[0]["alert_seq"] == seq
        wait_until(lambda: outbox(db)[0][2] != "")
    finally:
        again.stop()
        up.close()


def test_two_workers_send_each_notification_once(
    tmp_path: Path, secret_file: Path, receiver: Receiver
) -> None:
    two = ServerProcess(
        RULESETS, tmp_path, "--watch", "0", "--workers", "2", "--alert-interval", "0",
        "--webhook-url", receiver.url, "--webhook-secret-file", str(secret_file),
        "--webhook-retry", "0.1",
    )  # fmt: skip
    try:
        seqs = [escalate(two.target, f"督办 {i}")[1] for i in range(6)]
        wait_until(lambda: len(receiver.got) >= 6)
        time.sleep(1.5)  # many more passes of both workers
        assert sorted(b["alert_seq"] for b in receiver.bodies()) == sorted(seqs)
        delivered = [e for e in two.events if e["event"] == "webhook.delivered"]
        assert len(delivered) == 6 and all("note" not in e for e in delivered)
        assert len({e.get("worker") for e in two.events if e["event"] == "webhook.started"}) == 2
    finally:
        two.signal(signal.SIGTERM)
        two.wait()


def test_options_are_checked_at_start(tmp_path: Path, secret_file: Path) -> None:
    base = ["--listen", "127.0.0.1:0", "--rulesets", str(RULESETS), "--state-dir",
            str(tmp_path), "--insecure-no-auth"]  # fmt: skip
    short = tmp_path / "short.secret"
    short.write_text("abc")
    cases = [
        (["--webhook-url", "http://127.0.0.1:9/x"], "needs --webhook-secret-file"),
        (["--webhook-secret-file", str(secret_file)], "needs --webhook-url"),
        (["--webhook-url", "ftp://x/", "--webhook-secret-file", str(secret_file)], "http(s)"),
        (["--webhook-url", "http://h/", "--webhook-secret-file", str(short)], "16 bytes"),
    ]
    try:
        for extra, says in cases:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                assert server_main([*base, *extra]) == 1
            assert says in err.getvalue()
    finally:  # main() pointed the logs at `err`: back to the session's stderr
        logs.configure("json", "info", cache=False)
