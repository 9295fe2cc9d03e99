"""A small synchronous client for miaopi.v1.ApprovalService that speaks plain dicts.

Errors, one tree under :class:`MiaopiClientError`:

    MiaopiClientError
    ├── ClientError      an RPC failed: grpc status name, message, BadRequest field violations
    └── CaseFileError    a replay case file has bad lines (every one of them, see cases.py)
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc


class MiaopiClientError(Exception):
    """Base class of every error the client side raises on purpose."""


class ClientError(MiaopiClientError):
    """An RPC failed. `code` is the gRPC status name, e.g. "INVALID_ARGUMENT"."""

    def __init__(self, code: str, message: str,
                 violations: list[tuple[str, str]] | None = None):
        self.code = code
        self.message = message
        self.violations = list(violations or [])
        super().__init__(f"{code}: {message}")


class CaseFileError(MiaopiClientError):
    """A case file cannot be used; `problems` holds one "file:line: problem" per bad line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def message_dict(msg: Message) -> dict[str, Any]:
    """Proto -> dict with the field names of the .proto (snake_case), defaults omitted."""
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def _outcome(name: str) -> str:
    return name.removeprefix("OUTCOME_")


def decision_dict(msg: pb.Decision) -> dict[str, Any]:
    """The dict shape every caller sees for a decision, remote or in-process alike.

    Outcomes lose their enum prefix ("OUTCOME_APPROVE" -> "APPROVE") so that they compare
    directly with case files; everything else is as MessageToDict gives it.
    """
    d = message_dict(msg)
    if "outcome" in d:
        d["outcome"] = _outcome(d["outcome"])
    for r in d.get("reasons", []):
        if "outcome" in r:
            r["outcome"] = _outcome(r["outcome"])
    return d


def facts_struct(facts: dict[str, Any]) -> struct_pb2.Struct:
    """Facts as they travel on the wire (every number becomes a double)."""
    s = struct_pb2.Struct()
    s.update(facts)
    return s


def _error(exc: grpc.RpcError) -> ClientError:
    """Turn a failed call into ClientError, unpacking google.rpc.BadRequest when present."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = (exc.details() if isinstance(exc, grpc.Call) else str(exc)) or ""
    violations: list[tuple[str, str]] = []
    try:
        status = rpc_status.from_call(exc) if isinstance(exc, grpc.Call) else None
    except ValueError:  # rich status inconsistent with the call's own: keep the plain one
        status = None
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
    return ClientError(code.name, message, violations)


class Client:
    """ApprovalService over one channel; use as a context manager to close it."""

    def __init__(self, target: str, timeout: float = 10.0):
        self.target = target
        self.timeout = timeout
        self._channel = grpc.insecure_channel(target)
        self._stub = pb_grpc.ApprovalServiceStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def list_items(self) -> list[dict[str, Any]]:
        """Every item the server decides, ordered by code."""
        try:
            resp = self._stub.ListItems(pb.ListItemsRequest(), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return [message_dict(i) for i in resp.items]

    def get_item(self, code: str) -> dict[str, Any]:
        """One item's catalogue entry; ClientError("NOT_FOUND", ...) for an unknown code."""
        try:
            resp = self._stub.GetItem(pb.GetItemRequest(item_code=code), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return message_dict(resp.item)

    def decide(self, item_code: str, facts: dict[str, Any], materials: list[str],
               request_id: str = "", window_id: str = "",
               operator_id: str = "") -> dict[str, Any]:
        """Decide one case. A malformed case raises ClientError("INVALID_ARGUMENT", ...)
        carrying every field violation; an unknown item raises ClientError("NOT_FOUND", ...)."""
        req = pb.DecideRequest(
            request_id=request_id, item_code=item_code, facts=facts_struct(facts),
            materials=materials, window=pb.Window(window_id=window_id, operator_id=operator_id))
        try:
            resp = self._stub.Decide(req, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return decision_dict(resp.decision)
