"""The gRPC server end to end: a real server on a free loopback port, real channels."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import structlog
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from tests.conftest import ServerProcess
from tests.support import (
    AS_OF,
    BUSINESS,
    BUSINESS_MATERIALS,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    decide_request,
    numbered_senior,
    senior_outcome,
    with_facts,
)


@pytest.fixture(scope="module")
def stub(live_server):
    channel = grpc.insecure_channel(live_server.target)
    yield pb_grpc.ApprovalServiceStub(channel)
    channel.close()


class TestDecide:
    def test_approve_with_explanation(self, stub):
        """A decision carries outcome, reasons with citation and facts read, ruleset, dates."""
        d = stub.Decide(
            decide_request("GF00012000", SENIOR, SENIOR_MATERIALS, request_id="r-1")
        ).decision
        assert d.outcome == pb.OUTCOME_APPROVE
        assert d.request_id == "r-1"
        assert d.outputs["monthly_amount"] == 30
        assert d.reasons[0].legal_basis.citation == "《南海区高龄老人津贴发放办法》第三条"
        assert {f.path for f in d.reasons[0].facts_read} == {
            "applicant.age",
            "applicant.hukou_region",
        }
        assert d.ruleset.version == "2024.1" and d.ruleset.digest.startswith("sha256:")
        assert d.as_of_date == AS_OF and d.decided_at.seconds > 0
        assert d.derived_facts["applicant.age"] == 76

    def test_decision_ids_unique(self, stub):
        """Every decision gets its own id."""
        ids = {
            stub.Decide(decide_request("GF00012000", SENIOR, SENIOR_MATERIALS)).decision.decision_id
            for _ in range(20)
        }
        assert len(ids) == 20

    def test_missing_date_defaults_to_today_and_is_echoed(self, stub):
        """Without application.date the server decides as of today in Asia/Shanghai."""
        facts = with_facts(SENIOR, application__date=None)
        d = stub.Decide(decide_request("GF00012000", facts, SENIOR_MATERIALS)).decision
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", d.as_of_date)

    def test_manual_review_has_due_date(self, stub):
        """MANUAL_REVIEW carries the review due date in working days."""
        facts = with_facts(BUSINESS, business__scope=["餐饮服务"])
        d = stub.Decide(decide_request("XK00051000", facts, BUSINESS_MATERIALS)).decision
        assert d.outcome == pb.OUTCOME_MANUAL_REVIEW
        assert d.review_due_date == "2026-11-23"  # promised 1 working day after Friday 20th

    def test_invalid_argument_names_every_field(self, stub):
        """A malformed case gets INVALID_ARGUMENT with a BadRequest violation per bad field."""
        facts = {"applicant": {"id_number": "1", "hukou_region": "x", "shoe_size": 42}}
        with pytest.raises(grpc.RpcError) as info:
            stub.Decide(decide_request("GF00012000", facts, ["id_card", "selfie"]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = rpc_status.from_call(info.value)
        bad = error_details_pb2.BadRequest()
        assert status is not None and status.details[0].Unpack(bad)
        assert {v.field for v in bad.field_violations} == {
            "facts.applicant.name",
            "facts.applicant.id_number",
            "facts.applicant.hukou_region",
            "facts.applicant.shoe_size",
            "materials[1]",
        }

    def test_empty_item_code_is_invalid(self, stub):
        """An empty item code is a bad request, not an unknown item."""
        with pytest.raises(grpc.RpcError) as info:
            stub.Decide(decide_request("", SENIOR, SENIOR_MATERIALS))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def test_unknown_item_not_found(self, stub):
        """An unknown item code is NOT_FOUND."""
        with pytest.raises(grpc.RpcError) as info:
            stub.Decide(decide_request("XX99999000", {}, []))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

    def test_chinese_round_trips(self, stub):
        """Chinese names and messages survive the round trip."""
        d = stub.Decide(
            decide_request(
                "XK00051000",
                with_facts(BUSINESS, business__name="南海区中华店"),
                BUSINESS_MATERIALS,
            )
        ).decision
        reason = next(r for r in d.reasons if r.rule_id == "name_forbidden_words")
        assert reason.message == "名称含禁用字词"
        assert any(f.value.string_value == "南海区中华店" for f in reason.facts_read)


class TestCatalogue:
    def test_list_items(self, stub):
        """ListItems returns every shipped item, ordered by code."""
        items = stub.ListItems(pb.ListItemsRequest()).items
        assert [i.code for i in items] == ["BA00027000", "GF00012000", "GF00034001", "XK00051000"]

    def test_get_item_renders_form(self, stub):
        """GetItem gives what a window needs to render the form and checklist."""
        item = stub.GetItem(pb.GetItemRequest(item_code="GF00034001")).item
        assert item.type == pb.ITEM_TYPE_BENEFIT_PAYMENT and item.type_name == "行政给付"
        assert item.time_limit.promised_working_days == 10
        status = next(f for f in item.form_fields if f.path == "household.status")
        assert [v.value for v in status.allowed_values] == ["dibao", "dibao_edge", "tekun", "none"]
        grade = next(f for f in item.form_fields if f.path == "disability.grade")
        assert (grade.type, grade.min, grade.max) == (pb.FIELD_TYPE_INTEGER, 1, 4)
        household = next(m for m in item.materials if m.id == "household_certificate")
        assert household.e_license and household.need == pb.MATERIAL_NEED_REQUIRED
        assert household.condition == 'household.status in ["dibao", "dibao_edge"]'

    def test_get_unknown_item(self, stub):
        """GetItem on an unknown code is NOT_FOUND."""
        with pytest.raises(grpc.RpcError) as info:
            stub.GetItem(pb.GetItemRequest(item_code="nope"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


class TestStandardServices:
    def test_health_serving(self, live_server):
        """The standard health service reports miaopi.v1.ApprovalService SERVING."""
        with grpc.insecure_channel(live_server.target) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service="miaopi.v1.ApprovalService")
            )
        assert resp.status == health_pb2.HealthCheckResponse.SERVING

    def test_reflection_lists_service(self, live_server):
        """Server reflection lets generic tools discover the service from the .proto alone."""
        with grpc.insecure_channel(live_server.target) as ch:
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            responses = stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            names = {s.name for r in responses for s in r.list_services_response.service}
        assert "miaopi.v1.ApprovalService" in names


class TestConcurrency:
    def test_concurrent_clients_get_their_own_answers(self, live_server):
        """64 concurrent clients deciding distinct cases each get the answer to their own case."""

        def one(i: int) -> tuple[int, int, float]:
            age, facts = numbered_senior(i)
            with grpc.insecure_channel(live_server.target) as ch:
                d = (
                    pb_grpc.ApprovalServiceStub(ch)
                    .Decide(decide_request("GF00012000", facts, SENIOR_MATERIALS))
                    .decision
                )
            return age, d.outcome, d.derived_facts["applicant.age"]

        with ThreadPoolExecutor(64) as pool:
            results = list(pool.map(one, range(256)))
        for age, outcome, derived_age in results:
            assert derived_age == age
            assert outcome == senior_outcome(age)


class TestLogs:
    def test_no_facts_in_logs(self, stub):
        """The canonical decision line has ids, codes and timing, and never facts."""
        with structlog.testing.capture_logs() as logs:
            stub.Decide(decide_request("GF00012000", SENIOR, SENIOR_MATERIALS))
            with pytest.raises(grpc.RpcError):
                stub.Decide(
                    decide_request(
                        "GF00012000", with_facts(SENIOR, applicant__id_number="1"), SENIOR_MATERIALS
                    )
                )
        line = next(e for e in logs if e["event"] == "decision")
        assert {"decision_id", "outcome", "ruleset_digest", "duration_ms"} <= set(line)
        text = json.dumps(logs, ensure_ascii=False)
        for secret in (SENIOR["applicant"]["id_number"], "陈建国", "440605"):
            assert secret not in text


@pytest.mark.slow
class TestProcess:
    def test_sigterm_graceful_shutdown(self, tmp_path):
        """miaopi-server starts on a free port, logs JSON, and exits 0 on SIGTERM."""
        server = ServerProcess(RULESETS, tmp_path)
        try:
            assert [e["event"] for e in server.events[:4]] == [
                "rules.gate",  # the rule set passed the check in a separate process
                "seal.key_generated",  # a fresh state dir gets a development key, with a warning
                "auth.disabled",  # and turning authentication off is warned about at start
                "server.started",
            ]
            with grpc.insecure_channel(server.target) as ch:
                d = (
                    pb_grpc.ApprovalServiceStub(ch)
                    .Decide(decide_request("GF00012000", SENIOR, SENIOR_MATERIALS), timeout=10)
                    .decision
                )
            assert d.outcome == pb.OUTCOME_APPROVE
            server.signal(signal.SIGTERM)
            assert server.wait() == 0
            server.wait_for("server.stopped")
            assert server.events[-1]["event"] == "server.stopped"
        finally:
            server.kill()

    def test_bad_rule_files_refuse_to_start(self, tmp_path):
        """A broken rules directory stops start-up with located diagnostics and exit code 2."""
        (tmp_path / "bad.yaml").write_text("item: [", encoding="utf-8")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "miaopi_server.app",
                "--listen",
                "127.0.0.1:0",
                "--rulesets",
                str(tmp_path),
                "--log-format",
                "json",
                "--insecure-no-auth",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2
        assert "bad.yaml:" in proc.stderr and "MP100" in proc.stderr


class TestTransportLimits:
    def test_oversized_request_refused(self, stub):
        """A request over the size limit (1 MiB) is refused before it is parsed."""
        facts = {"applicant": {"name": "x" * (2 << 20)}}
        with pytest.raises(grpc.RpcError) as info:
            stub.Decide(decide_request("GF00012000", facts, SENIOR_MATERIALS))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    def test_client_deadline_honoured(self, stub):
        """A deadline that has already passed ends the call with DEADLINE_EXCEEDED."""
        with pytest.raises(grpc.RpcError) as info:
            stub.Decide(decide_request("GF00012000", SENIOR, SENIOR_MATERIALS), timeout=0.000001)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
