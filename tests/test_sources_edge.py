"""Shared data at the edge and in the record (四免): a real server with the real embedded
registry looks facts and e-licenses up under the applicant's consent, returns and records
where each fact came from and what every source said (who looked up whose data, for which
case); `miaopi audit export` carries the lookups and `miaopi replay` decides on them again
without calling a source, or with --refetch on today's registry."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from structlog.testing import capture_logs

from miaopi.v1 import approval_pb2 as pb
from miaopi_client.cli import main
from miaopi_client.client import Client, ClientError
from miaopi_server.audit.decision_json import decision_json
from miaopi_server.decision.catalog import load_catalog
from miaopi_server.edge import convert
from miaopi_server.edge.status import to_status
from miaopi_server.ops.lookups import gather
from miaopi_server.settings import Settings
from miaopi_server.sources.embedded import EmbeddedRegistry
from miaopi_server.sources.model import SourceUnavailable
from tests.conftest import LiveServer
from tests.support import (
    REGISTRY,
    SOURCED_AS_OF,
    registry_people,
    registry_senior,
    sourced_senior_rule,
)

CODE = "GF00012000"
MATERIALS = ["id_card", "bank_account"]  # the hukou book comes from the e-license library


def facts(key: str, **applicant: Any) -> dict[str, Any]:
    return {
        "applicant": {"name": "张三", "id_number": key, **applicant},
        "application": {"date": SOURCED_AS_OF},
    }


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("rules")
    (d / "senior.yaml").write_text(sourced_senior_rule(), encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def server(rules: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = LiveServer(
        Settings(
            listen="127.0.0.1:0",
            rulesets=rules,
            state_dir=tmp_path_factory.mktemp("state"),
            registry=REGISTRY,
        )
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.target) as c:
        yield c


class TestConvert:
    def test_a_sourced_decision_as_json_is_the_message_as_dict(self, rules):
        """provenance, e-licenses, lookups with their values and licences: the record's JSON
        is MessageToDict of what the window gets, field for field."""
        cat = load_catalog(rules)
        with contextlib.closing(EmbeddedRegistry(REGISTRY)) as reg:
            p = registry_senior()
            case = facts(p["key"], hukou_region="440604")  # a conflict, too
            item = cat.select(CODE, case, dt.date(2026, 11, 23)).item
            d = cat.decide(
                CODE, case, MATERIALS, dt.date(2026, 11, 23), gather(item, case, "授权-1", reg)
            )
        cat.close()
        assert d.provenance and d.e_licenses and d.sourced is not None
        when = dt.datetime(2026, 11, 20, 3, 4, 5, 120000, tzinfo=dt.UTC)
        expected = json_format.MessageToDict(
            convert.decision_message(d, "d-1", "r-1", when), preserving_proto_field_name=True
        )
        assert decision_json(d, "d-1", "r-1", when) == expected
        assert expected["sourced"]["lookups"][0]["key"] == p["key"]
        assert expected["sourced"]["licences"]["items"]

    def test_an_unavailable_source_is_UNAVAILABLE_naming_the_source_not_the_person(self):
        status = to_status(SourceUnavailable("population", "超时（0.2 秒）"))
        assert status.code == grpc.StatusCode.UNAVAILABLE
        assert "population" in status.details and "超时" in status.details
        proto = status_pb2.Status.FromString(
            dict(status.trailing_metadata)["grpc-status-details-bin"]
        )
        info = error_details_pb2.ErrorInfo()
        proto.details[0].Unpack(info)
        assert proto.code == code_pb2.UNAVAILABLE
        assert (info.reason, dict(info.metadata)) == (
            "SOURCE_UNAVAILABLE",
            {"source": "population"},
        )


class TestLiveServer:
    def test_with_consent_facts_come_from_the_registry_and_are_recorded(self, client):
        p = registry_senior()
        d = client.decide(CODE, facts(p["key"]), MATERIALS, window_id="w-1", consent="授权书-7")
        assert d["outcome"] == "APPROVE", d.get("reasons")
        origin = {o["path"]: o for o in d["provenance"]}
        assert origin["applicant.hukou_region"]["origin"] == "source"
        assert origin["applicant.hukou_region"]["record_id"] == p["record_id"]
        assert origin["applicant.name"]["origin"] == "window"
        assert [u["material_id"] for u in d["e_licenses"]] == ["hukou_book"]
        lookup = d["sourced"]["lookups"][0]
        assert (lookup["source"], lookup["key"], lookup["status"]) == (
            "population",
            p["key"],
            "found",
        )
        assert d["sourced"]["consent"] == "授权书-7"
        # The record holds the same: who (the receipt's window), whose data, for which case.
        got = client.get_decision(d["decision_id"])["decision"]
        assert got["sourced"] == d["sourced"] and got["provenance"] == d["provenance"]
        assert got["receipt"]["window"]["window_id"] == "w-1"

    def test_without_consent_nothing_is_looked_up(self, client):
        p = registry_senior()
        d = client.decide(
            CODE,
            facts(p["key"], hukou_region="440605"),
            [*MATERIALS, "hukou_book"],
            window_id="w-1",
        )
        assert d["outcome"] == "APPROVE"
        assert "sourced" not in d and "provenance" not in d and "e_licenses" not in d

    def test_without_consent_an_omitted_sourced_fact_is_missing(self, client):
        p = registry_senior()
        with pytest.raises(ClientError) as exc:
            client.decide(CODE, facts(p["key"]), MATERIALS, window_id="w-1")
        assert [f for f, _ in exc.value.violations] == ["facts.applicant.hukou_region"]

    def test_a_conflict_goes_to_review_and_a_retry_looks_nothing_up_again(self, client):
        p = registry_senior()
        case = facts(p["key"], hukou_region="440604")
        with capture_logs() as logs:
            first = client.decide(
                CODE, case, MATERIALS, request_id="r-conflict", window_id="w-1", consent="授权-2"
            )
            again = client.decide(
                CODE, case, MATERIALS, request_id="r-conflict", window_id="w-1", consent="授权-2"
            )
        assert first["outcome"] == "MANUAL_REVIEW"
        assert first["reasons"][0]["rule_id"] == "data:conflict:applicant.hukou_region"
        assert again["decision_id"] == first["decision_id"]
        looked_up = [e for e in logs if e.get("event") == "sources.looked_up"]
        assert len(looked_up) == 1  # the retry answered from the record
        # Which sources answered how, never whose data or what it said.
        assert looked_up[0]["lookups"] == {"population": "found"}
        assert p["key"] not in json.dumps(looked_up, ensure_ascii=False)

    def test_GetItem_says_which_fields_are_prefilled(self, client):
        item = client.get_item(CODE)
        fields = {f["path"]: f for f in item["form_fields"]}
        assert fields["applicant.hukou_region"]["prefilled_from"] == "population"
        assert fields["applicant.deceased"]["prefilled_from"] == "population"
        assert "prefilled_from" not in fields["applicant.name"]
        books = [m for m in item["materials"] if m["id"] == "hukou_book"]
        assert books[0]["e_license_type"] == "hukou_book"

    def test_a_bad_consent_reference_is_refused_by_name(self, server):
        with grpc.insecure_channel(server.target) as ch:
            stub = ch.unary_unary(
                "/miaopi.v1.ApprovalService/Decide",
                request_serializer=pb.DecideRequest.SerializeToString,
                response_deserializer=pb.DecideResponse.FromString,
            )
            req = pb.DecideRequest(item_code=CODE, consent=pb.Consent(reference="x\u202e"))
            with pytest.raises(grpc.RpcError) as exc:
                stub(req)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = rpc_status.from_call(exc.value)
        assert status is not None
        bad = error_details_pb2.BadRequest()
        status.details[0].Unpack(bad)
        assert "consent.reference" in [v.field for v in bad.field_violations]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with capture_logs(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def exported(client, server, tmp_path_factory) -> tuple[Path, list[dict[str, Any]]]:
    """Two sourced decisions and one on the window's facts alone, exported from a copy of
    the server's audit database."""
    p = registry_senior()
    client.decide(CODE, facts(p["key"]), MATERIALS, window_id="w-x", consent="授权-x")
    client.decide(
        CODE, facts(p["key"], hukou_region="440604"), MATERIALS, window_id="w-x", consent="c"
    )
    client.decide(
        CODE,
        facts(p["key"], hukou_region="440605"),
        [*MATERIALS, "hukou_book"],
        window_id="w-x",
    )
    d = tmp_path_factory.mktemp("export")
    out = d / "all.jsonl"
    db = str(server.running.store.path)
    code, _, err = run_cli("audit", "export", "--db", db, "--out", str(out))
    assert code == 0, err
    cases = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()][-3:]
    path = d / "cases.jsonl"
    path.write_text(
        "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8"
    )
    return path, cases


class TestExportAndReplay:
    def test_export_carries_the_lookups(self, exported):
        _, cases = exported
        assert [("sourced" in c) for c in cases] == [True, True, False]
        assert cases[0]["sourced"]["lookups"][0]["status"] == "found"
        assert [c["expected"]["outcome"] for c in cases] == [
            "APPROVE",
            "MANUAL_REVIEW",
            "APPROVE",
        ]

    def test_replay_decides_on_the_recorded_values_without_calling_a_source(
        self, exported, rules, tmp_path
    ):
        path, cases = exported
        code, out, err = run_cli("replay", str(path), "--rulesets", str(rules), "--json")
        assert code == 0, out + err
        # Proof that no source is called: change what the record says the registry held,
        # and the replay follows the record (the registry still holds 440605).
        edited = json.loads(json.dumps(cases[0]))
        edited["sourced"]["lookups"][0]["values"]["hukou_region"] = "440604"
        changed = tmp_path / "changed.jsonl"
        changed.write_text(json.dumps(edited, ensure_ascii=False) + "\n", encoding="utf-8")
        code, out, _ = run_cli("replay", str(changed), "--rulesets", str(rules), "--json")
        report = json.loads(out)
        assert code == 1 and report["cases"][0]["outcome"] == "REJECT"

    def test_refetch_looks_up_again_in_todays_registry(self, exported, rules, tmp_path):
        _, cases = exported
        edited = json.loads(json.dumps(cases[0]))
        edited["sourced"]["lookups"][0]["values"]["hukou_region"] = "440604"
        changed = tmp_path / "changed.jsonl"
        changed.write_text(json.dumps(edited, ensure_ascii=False) + "\n", encoding="utf-8")
        code, out, err = run_cli(
            "replay",
            str(changed),
            "--rulesets",
            str(rules),
            "--refetch",
            "--registry",
            str(REGISTRY),
        )
        assert code == 0, out + err  # today's registry says 440605 again: APPROVE as recorded

    def test_refetch_needs_a_registry_in_process(self, exported, rules):
        path, _ = exported
        code, _, err = run_cli("replay", str(path), "--rulesets", str(rules), "--refetch")
        assert code != 0 and "--registry" in err

    def test_a_malformed_sourced_is_named(self, rules, tmp_path):
        p = registry_people()[0]
        bad = {
            "item_code": CODE,
            "facts": facts(p["key"]),
            "materials": MATERIALS,
            "expected": {"outcome": "APPROVE"},
            "sourced": {"consent": "c", "lookups": [{"source": "population", "status": "found"}]},
        }
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps(bad, ensure_ascii=False) + "\n", encoding="utf-8")
        code, _, err = run_cli("replay", str(path), "--rulesets", str(rules))
        assert code != 0 and "sourced" in err and "key_path" in err


def test_settings_take_a_registry_directory():
    from miaopi_server.settings import parse_args

    assert parse_args([]).registry is None
    assert parse_args(["--registry", "data/registry"]).registry == Path("data/registry")
    assert dataclasses.replace(Settings(), registry=REGISTRY).registry == REGISTRY
