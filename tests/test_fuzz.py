"""A bounded fuzz run against the real server on loopback: malformed and random requests get
only clean client errors, the server stays healthy, and the audit chain still verifies."""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.support import (
    BUSINESS,
    BUSINESS_MATERIALS,
    DEVICE,
    DEVICE_MATERIALS,
    DISABILITY,
    DISABILITY_MATERIALS,
    NASTY,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    TOKENS,
    credentials,
    mutate,
)

ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
METHODS = [
    m.name
    for m in pb.DESCRIPTOR.services_by_name["ApprovalService"].methods
    if m.name != "ReloadRulesets"
]  # reloading is legitimate admin work, not fuzz
BASES = [
    ("GF00012000", SENIOR, SENIOR_MATERIALS),
    ("GF00034001", DISABILITY, DISABILITY_MATERIALS),
    ("XK00051000", BUSINESS, BUSINESS_MATERIALS),
    ("BA00027000", DEVICE, DEVICE_MATERIALS),
]


def random_request(rng: random.Random) -> tuple[str, bytes, list[tuple[str, str]]]:
    token = rng.choice([*TOKENS.values(), "", "garbage", "Bearer", TOKENS["w1"] + "x"])
    metadata = [("authorization", f"Bearer {token}")] if token else []
    method = rng.choice(METHODS)
    if rng.random() < 0.25:
        return method, os.urandom(rng.randrange(0, 200)), metadata
    if method == "Decide":
        code, facts, materials = rng.choice(BASES)
        if rng.random() < 0.2:  # a well-formed case from a window granted every item
            req = pb.DecideRequest(item_code=code, materials=materials)
            json_format.ParseDict(facts, req.facts)
            return method, req.SerializeToString(), [("authorization", f"Bearer {TOKENS['slow']}")]
        req = pb.DecideRequest(
            item_code=rng.choice([code, code, "", "X" * 300, "不存在"]),
            materials=[rng.choice(["id_card", "x", "", "材料"]) for _ in range(rng.randrange(4))],
        )
        try:
            json_format.ParseDict(mutate(rng, facts), req.facts)
        except (json_format.ParseError, ValueError, TypeError):
            json_format.ParseDict(facts, req.facts)
        return method, req.SerializeToString(), metadata
    request_type = getattr(pb, f"{method}Request")
    msg = request_type()
    for field in request_type.DESCRIPTOR.fields:
        if field.type == field.TYPE_STRING and rng.random() < 0.7:
            text = str(rng.choice(NASTY))[:100].encode("utf-8", "replace").decode()
            setattr(msg, field.name, text)
        elif field.type in (field.TYPE_INT32, field.TYPE_INT64) and rng.random() < 0.7:
            setattr(msg, field.name, rng.choice([-1, 0, 1, 10**9, -(2**31)]))
    return method, msg.SerializeToString(), metadata


@pytest.mark.slow
def test_fuzz_server(tmp_path):
    """3,000 random and malformed requests: only allowed status codes, health stays SERVING,
    and the audit chain verifies afterwards."""
    live = LiveServer(
        Settings(
            listen="127.0.0.1:0",
            rulesets=RULESETS,
            state_dir=tmp_path,
            credentials=credentials(tmp_path / "c.yaml"),
            rate_per_second=0,
        ),
        auth=True,
    )
    try:
        seen: dict[grpc.StatusCode, int] = {}
        with grpc.insecure_channel(live.target) as ch:
            calls = {m: ch.unary_unary(f"/miaopi.v1.ApprovalService/{m}") for m in METHODS}

            def one(seed: int) -> grpc.StatusCode:
                method, payload, metadata = random_request(random.Random(seed))
                try:
                    calls[method](payload, metadata=metadata, timeout=10)
                    return grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    return exc.code()

            with ThreadPoolExecutor(8) as pool:
                for code in pool.map(one, range(3000)):
                    seen[code] = seen.get(code, 0) + 1
            assert set(seen) <= ALLOWED, seen
            assert seen.get(grpc.StatusCode.OK, 0) > 0
            health = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service="miaopi.v1.ApprovalService")
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            verify = ch.unary_unary(
                "/miaopi.v1.ApprovalService/VerifyAuditTrail",
                response_deserializer=pb.VerifyAuditTrailResponse.FromString,
            )
            result: Any = verify(
                pb.VerifyAuditTrailRequest().SerializeToString(),
                metadata=[("authorization", f"Bearer {TOKENS['sup']}")],
            )
            assert result.ok and result.checked > 0
    finally:
        live.stop()
