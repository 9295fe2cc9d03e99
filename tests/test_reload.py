"""Hot reload: new rule files replace the old set atomically, bad ones are refused while the
old set keeps serving, and no call fails under load."""

from __future__ import annotations

import shutil
import signal
import threading
import time

import grpc
import pytest

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_server.settings import Settings
from tests.conftest import LiveServer, ServerProcess
from tests.support import RULESETS, centenarian_request, set_amount


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "rules"
    shutil.copytree(RULESETS, root)
    live = LiveServer(
        Settings(
            listen="127.0.0.1:0",
            rulesets=root,
            state_dir=tmp_path / "state",
            grace_seconds=0.2,
            watch_seconds=0.2,
        )
    )
    live.root = root  # type: ignore[attr-defined]
    yield live
    live.stop()


class TestReload:
    def test_reload_under_load_fails_no_call(self, server):
        """8 clients decide while the rules change and reload 5 times: zero failed calls, and
        every answer comes from one complete version."""
        errors: list[str] = []
        amounts: list[float] = []
        stop = threading.Event()

        def client() -> None:
            with grpc.insecure_channel(server.target) as ch:
                stub = pb_grpc.ApprovalServiceStub(ch)
                while not stop.is_set():
                    try:
                        d = stub.Decide(centenarian_request(), timeout=10).decision
                        amounts.append(d.outputs["monthly_amount"])
                    except grpc.RpcError as exc:
                        errors.append(f"{exc.code()}: {exc.details()}")

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        with grpc.insecure_channel(server.target) as ch:
            stub = pb_grpc.ApprovalServiceStub(ch)
            for amount in (310, 320, 330, 340, 350):
                set_amount(server.root, amount)
                result = stub.ReloadRulesets(pb.ReloadRulesetsRequest())
                assert result.applied and result.changed == ["GF00012000@2024.1"]
                time.sleep(0.05)
            stop.set()
            for t in threads:
                t.join()
            assert errors == []
            assert len(amounts) > 50
            assert set(amounts) <= {300, 310, 320, 330, 340, 350}
            after = stub.Decide(centenarian_request()).decision
            assert after.outputs["monthly_amount"] == 350

    def test_bad_file_refused_old_set_keeps_serving(self, server):
        """A broken file is refused with located errors; the old set keeps deciding."""
        with grpc.insecure_channel(server.target) as ch:
            stub = pb_grpc.ApprovalServiceStub(ch)
            before = stub.Decide(centenarian_request()).decision.ruleset.digest
            (server.root / "broken.yaml").write_text("item: {code: X1\n", encoding="utf-8")
            result = stub.ReloadRulesets(pb.ReloadRulesetsRequest())
            assert not result.applied
            assert any("broken.yaml:" in d and "MP100" in d for d in result.diagnostics)
            assert stub.Decide(centenarian_request()).decision.ruleset.digest == before
            status = stub.GetRulesetStatus(pb.GetRulesetStatusRequest())
            assert not status.last_reload.applied and status.last_reload.diagnostics

    def test_a_file_name_that_is_not_utf8_is_named(self, server):
        """A rule file named in another system's encoding (bytes that are not UTF-8) made
        staging's digest raise UnicodeEncodeError: rules.reload_failed with a traceback, and a
        diagnostic of Python's words naming only the directory. Now it is MP100 at the file,
        its bytes escaped, and the old set keeps serving."""
        import os

        from structlog.testing import capture_logs

        odd = os.fsencode(server.root) + b"/\xb9\xe6\xd4\xf2.yaml"  # 规则 in GBK
        with open(odd, "wb") as f:
            f.write(b"item: {code: X1}\n")
        with grpc.insecure_channel(server.target) as ch, capture_logs() as logs:
            stub = pb_grpc.ApprovalServiceStub(ch)
            before = stub.Decide(centenarian_request()).decision.ruleset.digest
            result = stub.ReloadRulesets(pb.ReloadRulesetsRequest())
            assert not result.applied
            assert list(result.diagnostics) == [
                "rules/\\xb9\\xe6\\xd4\\xf2.yaml:1:1: error MP100: 文件名不是 UTF-8 编码：请改名"
            ]
            time.sleep(0.5)  # the file watch looks at it too
            assert stub.Decide(centenarian_request()).decision.ruleset.digest == before
        assert not [e for e in logs if e["event"] == "rules.reload_failed"]

    def test_file_watch_picks_up_changes(self, server):
        """Saving a rule file is enough: the watcher reloads it."""
        with grpc.insecure_channel(server.target) as ch:
            stub = pb_grpc.ApprovalServiceStub(ch)
            set_amount(server.root, 333)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if stub.Decide(centenarian_request()).decision.outputs["monthly_amount"] == 333:
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the watcher did not reload the changed file")
            status = stub.GetRulesetStatus(pb.GetRulesetStatusRequest())
            assert status.last_reload.applied and status.last_reload.changed == [
                "GF00012000@2024.1"
            ]

    def test_versions_in_catalogue(self, server):
        """GetItem lists every loaded version and marks the current one."""
        with grpc.insecure_channel(server.target) as ch:
            item = (
                pb_grpc.ApprovalServiceStub(ch)
                .GetItem(pb.GetItemRequest(item_code="GF00012000"))
                .item
            )
        assert [(v.version, v.current) for v in item.versions] == [("2024.1", True)]
        assert item.versions[0].digest == item.ruleset.digest


@pytest.mark.slow
def test_sighup_reloads(tmp_path):
    """SIGHUP makes a running server re-read its rules directory."""
    root = tmp_path / "rules"
    shutil.copytree(RULESETS, root)
    server = ServerProcess(root, tmp_path / "state", "--watch", "0")
    target = server.target
    try:
        set_amount(root, 444)
        server.signal(signal.SIGHUP)
        assert server.wait_for("rules.reloaded")["changed"] == ["GF00012000@2024.1"]
        with grpc.insecure_channel(target) as ch:
            d = pb_grpc.ApprovalServiceStub(ch).Decide(centenarian_request(), timeout=10).decision
        assert d.outputs["monthly_amount"] == 444
    finally:
        server.signal(signal.SIGTERM)
        server.wait()
