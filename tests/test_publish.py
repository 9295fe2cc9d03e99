"""Publishing is a deliberate act: edits in the served directory change nothing until
published (the file watch is off by default); a set whose own rule tests fail is refused with
every failing case named; every published set is archived content-addressed and on the record,
so the exact rules a decision was made under can be read back (GetPublishedRules,
`miaopi rules show`)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_client.cli import main
from miaopi_server.ops.staging import set_digest
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.support import (
    RULESETS,
    SENIOR_FILE,
    TOKENS,
    centenarian_request,
    credentials,
    hash_token,
    set_amount,
)


def _events(db: Path, kind: str) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT body FROM records WHERE kind = 'event' ORDER BY seq").fetchall()
    events = [json.loads(r[0])["event"] for r in rows]
    return [e for e in events if e["type"] == kind]


def _archived(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [r[0] for r in conn.execute("SELECT set_digest FROM published_rulesets")]


@pytest.fixture()
def served(tmp_path: Path) -> Any:
    """A server on a copy of the shipped rules, with default settings (no --watch)."""
    root = tmp_path / "rules"
    shutil.copytree(RULESETS, root)
    live = LiveServer(Settings(listen="127.0.0.1:0", rulesets=root, state_dir=tmp_path / "state"))
    live.root = root  # type: ignore[attr-defined]
    live.db = tmp_path / "state" / "audit.sqlite3"  # type: ignore[attr-defined]
    yield live
    live.stop()


def _amount(stub: Any) -> float:
    return float(stub.Decide(centenarian_request(), timeout=10).decision.outputs["monthly_amount"])


class TestDeliberatePublishing:
    def test_edit_in_served_dir_is_not_live_until_published(self, served: Any) -> None:
        """Saving a file changes nothing by itself: no file watch runs unless asked for; the
        edit goes live when published (ReloadRulesets)."""
        assert Settings().watch_seconds == 0
        assert served.running.watcher is None
        with grpc.insecure_channel(served.target) as ch:
            stub = pb_grpc.ApprovalServiceStub(ch)
            assert _amount(stub) == 300
            set_amount(served.root, 333)
            assert _amount(stub) == 300  # saved, not published
            result = stub.ReloadRulesets(pb.ReloadRulesetsRequest())
            assert result.applied and result.changed == ["GF00012000@2024.1"]
            assert _amount(stub) == 333

    def test_a_failing_case_refuses_publication(self, served: Any) -> None:
        """The set's own cases (beside its rule files) run before it may go live: a rule change
        its cases contradict is refused, naming every failing case where it is."""
        rule = served.root / SENIOR_FILE
        text = rule.read_text(encoding="utf-8")
        rule.write_text(
            text.replace(
                "{when: applicant.age >= 100, value: 300", "{when: applicant.age >= 100, value: 310"
            ),
            encoding="utf-8",
        )
        with grpc.insecure_channel(served.target) as ch:
            stub = pb_grpc.ApprovalServiceStub(ch)
            result = stub.ReloadRulesets(pb.ReloadRulesetsRequest())
            assert not result.applied
            failing = [d for d in result.diagnostics if "MP370" in d]
            cases_file = "rules/GF00012000-senior-allowance.cases.jsonl"
            assert len(failing) == 2, result.diagnostics
            assert any(
                d.startswith(f"{cases_file}:5:") and "senior-approve-100" in d for d in failing
            )
            assert any(
                d.startswith(f"{cases_file}:6:") and "senior-review-105" in d for d in failing
            )
            assert all("expected 300, got 310" in d for d in failing)
            assert _amount(stub) == 300  # the previous set keeps serving
            status = stub.GetRulesetStatus(pb.GetRulesetStatusRequest())
            assert not status.last_reload.applied
        assert len(_events(served.db, "ruleset_published")) == 1  # only the start's

    def test_a_bad_case_file_refuses_publication(self, served: Any) -> None:
        """A case file the rule tests cannot read is not a pass."""
        (served.root / "broken.cases.jsonl").write_text("{not json\n", encoding="utf-8")
        with grpc.insecure_channel(served.target) as ch:
            result = pb_grpc.ApprovalServiceStub(ch).ReloadRulesets(pb.ReloadRulesetsRequest())
        assert not result.applied
        assert any("MP371" in d and "broken.cases.jsonl" in d for d in result.diagnostics)


class TestArchive:
    def test_every_published_set_is_archived_and_on_record(self, served: Any) -> None:
        """Start-up, a change and the same text again: three publications on the record, two
        sets archived; a decision's ruleset digest finds the exact text it was decided under."""
        with grpc.insecure_channel(served.target) as ch:
            stub = pb_grpc.ApprovalServiceStub(ch)
            first = stub.Decide(centenarian_request()).decision.ruleset
            old = stub.GetPublishedRules(pb.GetPublishedRulesRequest(digest=first.digest))
            files = {f.path: f.content for f in old.files}
            on_disk = (RULESETS / SENIOR_FILE).read_bytes().decode("utf-8")
            assert files[f"rules/{SENIOR_FILE}"] == on_disk  # byte for byte
            assert "rules/lists/business_scope.yaml" in files
            assert "rules/GF00012000-senior-allowance.cases.jsonl" in files
            assert old.versions["GF00012000@2024.1"] == first.digest
            raw = [(p.removeprefix("rules/"), c.encode()) for p, c in files.items()]
            assert set_digest("rules", raw) == old.set_digest  # anyone can recompute it

            set_amount(served.root, 333)
            changed = stub.ReloadRulesets(pb.ReloadRulesetsRequest())
            assert changed.applied and changed.set_digest != old.set_digest
            again = stub.ReloadRulesets(pb.ReloadRulesetsRequest())
            assert again.applied and again.set_digest == changed.set_digest

            new = stub.GetPublishedRules(pb.GetPublishedRulesRequest(digest=changed.set_digest))
            assert "value: 333" in {f.path: f.content for f in new.files}[f"rules/{SENIOR_FILE}"]
            decided = stub.Decide(centenarian_request()).decision.ruleset.digest
            assert decided == new.versions["GF00012000@2024.1"] != first.digest
            by_old = stub.GetPublishedRules(pb.GetPublishedRulesRequest(digest=first.digest))
            assert by_old.set_digest == old.set_digest  # years later: still the old text
            with pytest.raises(grpc.RpcError) as missing:
                stub.GetPublishedRules(pb.GetPublishedRulesRequest(digest="sha256:00"))
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as empty:
                stub.GetPublishedRules(pb.GetPublishedRulesRequest())
            assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert stub.VerifyAuditTrail(pb.VerifyAuditTrailRequest()).ok
        events = _events(served.db, "ruleset_published")
        assert [(e["trigger"], e["set_digest"], e["archived"]) for e in events] == [
            ("start", old.set_digest, True),
            ("rpc", changed.set_digest, True),
            ("rpc", changed.set_digest, False),  # on the record, stored once
        ]
        assert events[1]["by"] == "anonymous" and events[1]["versions"] == dict(new.versions)
        assert sorted(_archived(served.db)) == sorted([old.set_digest, changed.set_digest])

    def test_a_stray_jsonl_beside_the_rules_is_neither_run_nor_archived(self, served: Any) -> None:
        """Only `*.cases.jsonl` are case files: an export of real decisions left in the rules
        directory (here: cases that fail under the new amount) is not run by the gate, and
        not archived for GetPublishedRules to serve."""
        cases = served.root / "GF00012000-senior-allowance.cases.jsonl"
        shutil.copy(cases, served.root / "export.jsonl")
        (served.root / "lists" / "old.jsonl").write_text(cases.read_text("utf-8"), "utf-8")
        set_amount(served.root, 333)  # its own cases follow; the stray copies still say 300
        with grpc.insecure_channel(served.target) as ch:
            stub = pb_grpc.ApprovalServiceStub(ch)
            result = stub.ReloadRulesets(pb.ReloadRulesetsRequest())
            assert result.applied, result.diagnostics
            assert _amount(stub) == 333
            digest = stub.Decide(centenarian_request()).decision.ruleset.digest
            archived = stub.GetPublishedRules(pb.GetPublishedRulesRequest(digest=digest))
        paths = {f.path for f in archived.files}
        assert "rules/GF00012000-senior-allowance.cases.jsonl" in paths
        assert not [p for p in paths if p.endswith(".jsonl") and not p.endswith(".cases.jsonl")]

    def test_a_restart_publishes_nothing_new(self, tmp_path: Path) -> None:
        settings = Settings(listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path)
        for _ in range(2):
            LiveServer(settings).stop()
        assert len(_events(tmp_path / "audit.sqlite3", "ruleset_published")) == 1

    def test_rules_show_prints_and_writes_the_archived_files(
        self, served: Any, tmp_path: Path, capsys: Any
    ) -> None:
        with grpc.insecure_channel(served.target) as ch:
            digest = (
                pb_grpc.ApprovalServiceStub(ch)
                .Decide(centenarian_request())
                .decision.ruleset.digest
            )
        out = tmp_path / "appeal"
        assert (
            main(
                ["rules", "show", "--digest", digest, "--out", str(out), "--target", served.target]
            )
            == 0
        )
        assert (out / "rules" / SENIOR_FILE).read_bytes() == (RULESETS / SENIOR_FILE).read_bytes()
        assert (out / "rules" / "lists" / "business_scope.yaml").is_file()
        capsys.readouterr()
        assert main(["--target", served.target, "rules", "show", "--digest", digest]) == 0
        printed = capsys.readouterr().out
        assert f"# ---- rules/{SENIOR_FILE}" in printed and "GF00012000@2024.1" in printed
        assert main(["rules", "show", "--digest", "sha256:00", "--target", served.target]) == 3


def test_roles(tmp_path: Path) -> None:
    """GetPublishedRules: supervisor, admin, reviewer; not a window. DryRunDecide: supervisor
    and admin only."""
    creds = credentials(tmp_path / "credentials.yaml")
    data = yaml.safe_load(creds.read_text(encoding="utf-8"))
    data["principals"].append(
        {
            "id": "rev",
            "role": "reviewer",
            "department": "民政局",
            "jurisdiction": "440605",
            "token_sha256": hash_token("token-reviewer"),
        }
    )
    creds.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    tokens = {**TOKENS, "rev": "token-reviewer"}
    settings = Settings(
        listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path / "state", credentials=creds
    )
    live = LiveServer(settings, auth=True)
    try:
        with grpc.insecure_channel(live.target) as ch:
            stub = pb_grpc.ApprovalServiceStub(ch)

            def code(who: str, rpc: str, request: Any) -> grpc.StatusCode:
                try:
                    getattr(stub, rpc)(
                        request, metadata=[("authorization", f"Bearer {tokens[who]}")]
                    )
                except grpc.RpcError as exc:
                    return exc.code()
                return grpc.StatusCode.OK

            digest = stub.GetRulesetStatus(
                pb.GetRulesetStatusRequest(),
                metadata=[("authorization", f"Bearer {tokens['adm']}")],
            ).last_reload.set_digest
            assert digest.startswith("sha256:")
            show = pb.GetPublishedRulesRequest(digest=digest)
            dry = pb.DryRunDecideRequest(case=centenarian_request())
            denied = grpc.StatusCode.PERMISSION_DENIED
            assert {w: code(w, "GetPublishedRules", show) for w in ("sup", "adm", "rev", "w1")} == {
                "sup": grpc.StatusCode.OK,
                "adm": grpc.StatusCode.OK,
                "rev": grpc.StatusCode.OK,
                "w1": denied,
            }
            assert {w: code(w, "DryRunDecide", dry) for w in ("sup", "adm", "rev", "w1")} == {
                "sup": grpc.StatusCode.OK,
                "adm": grpc.StatusCode.OK,
                "rev": denied,
                "w1": denied,
            }
    finally:
        live.stop()
