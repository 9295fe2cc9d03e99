"""What a request may carry around the case: list queries with odd values are INVALID_ARGUMENT
naming each field (never UNKNOWN with Python's text), and an error with very many or very long
bad fields still reaches the caller as INVALID_ARGUMENT."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from tests.support import SENIOR, SENIOR_MATERIALS


@pytest.fixture(scope="module")
def stub(live_server):
    with grpc.insecure_channel(live_server.target) as channel:
        yield pb_grpc.ApprovalServiceStub(channel)


def violations(info: pytest.ExceptionInfo[grpc.RpcError]) -> dict[str, str]:
    status = rpc_status.from_call(info.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    return {v.field: v.description for v in bad.field_violations}


class TestListQueries:
    @pytest.mark.parametrize(
        ("request_fields", "field"),
        [
            ({"page_size": -2}, "page_size"),
            ({"page_size": -(2**31)}, "page_size"),
            ({"page_token": "x" * 10_000}, "page_token"),
            ({"page_token": "OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}, "page_token"),  # 10**20 - 1
            ({"outcome": 99}, "outcome"),
            ({"decided_from": {"seconds": 2**62}}, "decided_from"),
            ({"decided_to": {"seconds": -(2**62)}}, "decided_to"),
            ({"item_code": "G" * 100_000}, "item_code"),
        ],
    )
    def test_odd_values_are_named(self, stub, request_fields, field):
        """Each is INVALID_ARGUMENT naming its field; the message speaks of the query."""
        request = pb.ListDecisionsRequest()
        for name, value in request_fields.items():
            if isinstance(value, dict):
                getattr(request, name).seconds = value["seconds"]
            else:
                setattr(request, name, value)
        with pytest.raises(grpc.RpcError) as info:
            stub.ListDecisions(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in violations(info)
        assert info.value.details().startswith("查询请求有")

    def test_every_bad_field_at_once(self, stub):
        request = pb.ListDecisionsRequest(page_size=-1, outcome=42, page_token="!")
        with pytest.raises(grpc.RpcError) as info:
            stub.ListDecisions(request)
        assert set(violations(info)) == {"page_size", "outcome", "page_token"}


class TestBoundedErrors:
    @pytest.mark.parametrize(
        ("count", "key"),
        [(70, "{:03d}" + "x" * 200), (40, "{:03d}" + "名" * 200), (1, "k" * 500_000)],
    )
    def test_many_long_unknown_keys_still_give_invalid_argument(self, stub, count, key):
        """70 unknown keys of 200 characters (the red team's RESOURCE_EXHAUSTED), 40 of 200 CJK
        characters, one of 500 KB: the caller gets INVALID_ARGUMENT; what does not fit is
        counted, not dropped silently."""
        facts = {**SENIOR, **{key.format(i): 1 for i in range(count)}}
        req = pb.DecideRequest(item_code="GF00012000", materials=SENIOR_MATERIALS)
        json_format.ParseDict(facts, req.facts)
        for _ in range(5):  # the red team saw it fail some of the time
            with pytest.raises(grpc.RpcError) as info:
                stub.Decide(req)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        listed = violations(info)
        assert info.value.details() == f"申请数据有 {count} 处错误，请一次改正"
        if len(listed) < count:
            assert listed["…"] == f"另有 {count - len(listed) + 1} 处错误未列出"
