"""Domain errors -> gRPC status, in one place.

INVALID_ARGUMENT carries google.rpc.BadRequest with every field violation; NOT_FOUND carries
google.rpc.ErrorInfo; anything unexpected becomes INTERNAL with a generic message (the
exception itself is logged, never sent).
"""

from __future__ import annotations

from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from miaopi_server.casework.states import IllegalTransition
from miaopi_server.edge.auth import PermissionDenied, RateLimited, Unauthenticated
from miaopi_server.errors import (
    AuditUnavailable,
    CaseInvalid,
    DecisionNotFound,
    FieldViolation,
    ItemNotFound,
    RequestConflict,
    RulesetNotFound,
)
from miaopi_server.sources.model import SourceUnavailable

DOMAIN = "miaopi.gov.cn"
# Status details travel in HTTP/2 trailers (a few KB at most): text that echoes the request is
# clipped so the error itself always reaches the caller.
# Limits in UTF-8 bytes (CJK text is 3 bytes a character). The BadRequest as a whole stays
# under MAX_DETAILS bytes (base64 in the grpc-status-details-bin trailer adds a third, and
# gRPC refuses trailers over 8 KiB): violations beyond it are counted, not listed.
MAX_FIELD = 200
MAX_DESCRIPTION = 300
MAX_MESSAGE = 500
MAX_DETAILS = 4000


def _clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, whole characters, marked with "…"."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def bad_request(violations: list[FieldViolation]) -> error_details_pb2.BadRequest:
    """Every violation that fits in MAX_DETAILS bytes, then one saying how many more there are."""
    bad = error_details_pb2.BadRequest()
    for i, v in enumerate(violations):
        entry = error_details_pb2.BadRequest.FieldViolation(
            field=_clip(v.field, MAX_FIELD), description=_clip(v.description, MAX_DESCRIPTION)
        )
        if bad.ByteSize() + entry.ByteSize() + 64 > MAX_DETAILS:
            rest = len(violations) - i
            bad.field_violations.add(field="…", description=f"另有 {rest} 处错误未列出")
            break
        bad.field_violations.append(entry)
    return bad


def _status(code: int, message: str, *details: object) -> grpc.Status:
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)  # type: ignore[arg-type]
        packed.append(a)
    status = status_pb2.Status(code=code, message=_clip(message, MAX_MESSAGE), details=packed)
    return rpc_status.to_status(status)


def to_status(exc: BaseException) -> grpc.Status:
    if isinstance(exc, CaseInvalid):
        return _status(
            code_pb2.INVALID_ARGUMENT,
            f"{exc.subject}有 {len(exc.violations)} 处错误，请一次改正",
            bad_request(exc.violations),
        )
    if isinstance(exc, ItemNotFound):
        info = error_details_pb2.ErrorInfo(
            reason="ITEM_NOT_FOUND", domain=DOMAIN, metadata={"item_code": exc.item_code[:64]}
        )
        return _status(code_pb2.NOT_FOUND, str(exc), info)
    if isinstance(exc, DecisionNotFound):
        info = error_details_pb2.ErrorInfo(reason="DECISION_NOT_FOUND", domain=DOMAIN)
        return _status(code_pb2.NOT_FOUND, str(exc), info)
    if isinstance(exc, RulesetNotFound):
        info = error_details_pb2.ErrorInfo(reason="RULESET_NOT_FOUND", domain=DOMAIN)
        return _status(code_pb2.NOT_FOUND, str(exc), info)
    if isinstance(exc, RequestConflict):
        info = error_details_pb2.ErrorInfo(
            reason="REQUEST_ID_REUSED",
            domain=DOMAIN,
            metadata={"request_id": exc.request_id[:128], "decision_id": exc.decision_id},
        )
        return _status(code_pb2.ALREADY_EXISTS, str(exc), info)
    if isinstance(exc, IllegalTransition):
        info = error_details_pb2.ErrorInfo(
            reason="ILLEGAL_TRANSITION",
            domain=DOMAIN,
            metadata={"state": exc.state, "action": exc.action},
        )
        return _status(code_pb2.FAILED_PRECONDITION, str(exc), info)
    if isinstance(exc, AuditUnavailable):
        return _status(code_pb2.UNAVAILABLE, "审计记录暂不可写，未作出决定，请稍后重试")
    if isinstance(exc, SourceUnavailable):
        # Names the source, never whose data was asked for.
        info = error_details_pb2.ErrorInfo(
            reason="SOURCE_UNAVAILABLE", domain=DOMAIN, metadata={"source": exc.source}
        )
        return _status(
            code_pb2.UNAVAILABLE,
            f"共享数据源 {exc.source} 暂不可用（{exc.reason}），未作出决定，请稍后重试",
            info,
        )
    if isinstance(exc, Unauthenticated):
        return _status(code_pb2.UNAUTHENTICATED, "未认证：请提供有效凭证")
    if isinstance(exc, PermissionDenied):
        return _status(code_pb2.PERMISSION_DENIED, f"无权执行：{exc}")
    if isinstance(exc, RateLimited):
        return _status(code_pb2.RESOURCE_EXHAUSTED, f"请求过于频繁：{exc}")
    return _status(code_pb2.INTERNAL, "服务内部错误，请稍后重试")


async def abort(context: grpc.aio.ServicerContext, exc: BaseException) -> NoReturn:
    """End the call with `exc`'s status (to_status); never returns."""
    await context.abort_with_status(to_status(exc))
    raise AssertionError("abort_with_status returned")  # pragma: no cover
