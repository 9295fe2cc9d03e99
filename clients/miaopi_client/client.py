"""A small synchronous client for miaopi.v1.ApprovalService that speaks plain dicts.

Errors, one tree under :class:`MiaopiClientError`:

    MiaopiClientError
    ├── ClientError      an RPC failed: grpc status name, message, BadRequest field violations
    └── CaseFileError    a replay case file has bad lines (every one of them, see cases.py)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import review_pb2 as rpb

if TYPE_CHECKING:  # grpc itself is loaded with the first Client: the offline commands
    import grpc  # (audit verify --db, replay --rulesets, rules ...) start without it


class MiaopiClientError(Exception):
    """Base class of every error the client side raises on purpose."""


class ClientError(MiaopiClientError):
    """An RPC failed. `code` is the gRPC status name, e.g. "INVALID_ARGUMENT"."""

    def __init__(self, code: str, message: str, violations: list[tuple[str, str]] | None = None):
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
    return without_outcome_prefix(message_dict(msg))


def without_outcome_prefix(d: dict[str, Any]) -> dict[str, Any]:
    """A decision's proto3 JSON with its outcomes as case files write them; `d` is changed."""
    if "outcome" in d:
        d["outcome"] = _outcome(d["outcome"])
    for r in d.get("reasons", []):
        if "outcome" in r:
            r["outcome"] = _outcome(r["outcome"])
    return d


def facts_struct(facts: dict[str, Any]) -> struct_pb2.Struct:
    """Facts as they travel on the wire (every number becomes a double). A number no double
    can hold is the case's error (INVALID_ARGUMENT), as NaN is on the server."""
    s = struct_pb2.Struct()
    try:
        s.update(facts)
    except OverflowError:
        raise ClientError(
            "INVALID_ARGUMENT", "facts 中有超出范围的数字（超过双精度浮点数的范围）"
        ) from None
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in a case file): no UTF-8 form
        raise ClientError(
            "INVALID_ARGUMENT", "facts 中有无法以 UTF-8 表示的文字（孤立的代理项）"
        ) from None
    return s


def _error(exc: grpc.RpcError) -> ClientError:
    """Turn a failed call into ClientError, unpacking google.rpc.BadRequest when present."""
    import grpc
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

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


@cache
def _bearer_token_class() -> type:
    import grpc

    class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
        """Adds `authorization: Bearer <token>` to every call, streams (WatchAlerts) included."""

        def __init__(self, token: str):
            self._metadata = ("authorization", f"Bearer {token}")

        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            metadata = [*(details.metadata or ()), self._metadata]
            return continuation(details._replace(metadata=metadata), request)

        def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
            return self.intercept_unary_unary(continuation, details, request)

    return _BearerToken


@dataclass(frozen=True)
class TLS:
    """Trust anchors and, for mutual TLS, the client's certificate and key (PEM files)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        import grpc

        def read(p: Path | None) -> bytes | None:
            return p.read_bytes() if p else None

        return grpc.ssl_channel_credentials(read(self.ca), read(self.key), read(self.cert))


class Client:
    """ApprovalService over one channel; use as a context manager to close it.

    `token` authenticates as a principal; `tls` switches the channel to TLS."""

    def __init__(
        self, target: str, timeout: float = 10.0, token: str | None = None, tls: TLS | None = None
    ):
        import grpc

        from miaopi.v1 import approval_pb2_grpc as pb_grpc
        from miaopi.v1 import review_pb2_grpc as rpb_grpc

        self.target = target
        self.timeout = timeout
        if tls is not None:
            self._channel = grpc.secure_channel(target, tls.credentials())
        else:
            self._channel = grpc.insecure_channel(target)
        channel = self._channel
        if token:
            channel = grpc.intercept_channel(channel, _bearer_token_class()(token))
        self._stub = pb_grpc.ApprovalServiceStub(channel)
        self.review_stub = rpb_grpc.ReviewServiceStub(channel)  # `miaopi review` (review_cli)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def call(self, rpc: Callable[..., Any], request: Message) -> Any:
        return self._call(rpc, request)

    def _call(self, rpc: Callable[..., Any], request: Message) -> Any:
        """One unary call with this client's deadline; a failure raises ClientError."""
        import grpc  # loaded by __init__: a lookup

        try:
            return rpc(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def watch_alerts(self, after_seq: int, follow: bool) -> Iterator[Any]:
        """Alerts after `after_seq` (rpb.Alert messages); with `follow`, until interrupted
        (no deadline: the stream stays open for new ones)."""
        import grpc

        req = rpb.WatchAlertsRequest(after_seq=after_seq, follow=follow)
        try:
            for resp in self.review_stub.WatchAlerts(req, timeout=None if follow else self.timeout):
                yield resp.alert
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def list_items(self) -> list[dict[str, Any]]:
        """Every item the server decides, ordered by code."""
        resp = self._call(self._stub.ListItems, pb.ListItemsRequest())
        return [message_dict(i) for i in resp.items]

    def get_item(self, code: str) -> dict[str, Any]:
        """One item's catalogue entry; ClientError("NOT_FOUND", ...) for an unknown code."""
        resp = self._call(self._stub.GetItem, pb.GetItemRequest(item_code=code))
        return message_dict(resp.item)

    def decide(
        self,
        item_code: str,
        facts: dict[str, Any],
        materials: list[str],
        request_id: str = "",
        window_id: str = "",
        operator_id: str = "",
        consent: str = "",
    ) -> dict[str, Any]:
        """Decide one case; `consent` is the reference of the applicant's authorisation to
        look up their data in shared sources (empty: none). A malformed case raises
        ClientError("INVALID_ARGUMENT", ...) carrying every field violation; an unknown item
        raises ClientError("NOT_FOUND", ...)."""
        req = pb.DecideRequest(
            request_id=request_id,
            item_code=item_code,
            facts=facts_struct(facts),
            materials=materials,
            window=pb.Window(window_id=window_id, operator_id=operator_id),
            consent=pb.Consent(reference=consent),
        )
        resp = self._call(self._stub.Decide, req)
        return decision_dict(resp.decision)

    def dry_run_decide(
        self,
        item_code: str,
        facts: dict[str, Any],
        materials: list[str],
        window_id: str = "",
        operator_id: str = "",
        sourced: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Decide one case without recording a decision (DryRunDecide, supervisor or admin):
        the decision has dry_run set and no decision_id or receipt; the dry run itself goes on
        the record as an event. `sourced`, a recorded decision's lookups, is decided on as it
        is (nothing is looked up). Errors as `decide`."""
        req = pb.DryRunDecideRequest(
            case=pb.DecideRequest(
                item_code=item_code,
                facts=facts_struct(facts),
                materials=materials,
                window=pb.Window(window_id=window_id, operator_id=operator_id),
            )
        )
        if sourced is not None:
            try:
                json_format.ParseDict(sourced, req.sourced)
            except json_format.ParseError as exc:
                raise ClientError("INVALID_ARGUMENT", f"sourced: {exc}") from None
        resp = self._call(self._stub.DryRunDecide, req)
        return decision_dict(resp.decision)

    def published_rules(self, digest: str) -> dict[str, Any]:
        """The archived text of a published rule set, by set digest or by a decision's
        RulesetRef.digest: {"set_digest", "files": [{"path", "content"}], "versions", ...}.
        NOT_FOUND when no published set matches."""
        resp = self._call(self._stub.GetPublishedRules, pb.GetPublishedRulesRequest(digest=digest))
        return message_dict(resp)

    def get_decision(self, decision_id: str, include_case: bool = False) -> dict[str, Any]:
        """A recorded decision with its receipt: {"decision": {...}}, plus "case" (the case as
        received: item_code, facts, materials) when include_case is set. The case holds
        personal data, so it is left out unless asked for. NOT_FOUND for an unknown id."""
        resp = self._call(self._stub.GetDecision, pb.GetDecisionRequest(decision_id=decision_id))
        out: dict[str, Any] = {"decision": decision_dict(resp.decision)}
        if resp.case_purged:  # erased after its retention period
            out["case_purged"] = True
        elif include_case:
            out["case"] = message_dict(resp.case)
        return out

    def list_decisions(
        self,
        item_code: str = "",
        outcome: str = "",
        window_id: str = "",
        decided_from: str | dt.datetime = "",
        decided_to: str | dt.datetime = "",
        page_size: int = 50,
        page_token: str = "",
        include_cases: bool = False,
    ) -> dict[str, Any]:
        """One page of recorded decisions, newest first: {"decisions": [...],
        "next_page_token": "" at the end, "cases": [...] parallel to decisions (empty unless
        include_cases)}. `outcome` is "APPROVE" / "REJECT" / "MANUAL_REVIEW" (the OUTCOME_
        prefix is optional); decided_from (inclusive) and decided_to (exclusive) are RFC 3339
        strings or aware datetimes. Empty filters match everything."""
        req = pb.ListDecisionsRequest(
            item_code=item_code,
            window_id=window_id,
            page_size=page_size,
            page_token=page_token,
            include_cases=include_cases,
        )
        if outcome:
            try:
                req.outcome = pb.Outcome.Value("OUTCOME_" + outcome.removeprefix("OUTCOME_"))
            except ValueError:
                raise ClientError("INVALID_ARGUMENT", f"unknown outcome {outcome!r}") from None
        for field, value in (("decided_from", decided_from), ("decided_to", decided_to)):
            if value:
                getattr(req, field).CopyFrom(_timestamp(field, value))
        resp = self._call(self._stub.ListDecisions, req)
        return {
            "decisions": [decision_dict(d) for d in resp.decisions],
            "next_page_token": resp.next_page_token,
            "cases": [message_dict(c) for c in resp.cases],
        }

    def _pages(
        self, filters: dict[str, Any], page_size: int, include_cases: bool
    ) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            page = self.list_decisions(
                **filters, page_size=page_size, page_token=token, include_cases=include_cases
            )
            yield page
            token = page["next_page_token"]
            if not token:
                return

    def iter_decisions(
        self,
        item_code: str = "",
        outcome: str = "",
        window_id: str = "",
        decided_from: str | dt.datetime = "",
        decided_to: str | dt.datetime = "",
        page_size: int = 50,
    ) -> Iterator[dict[str, Any]]:
        """Every matching decision, newest first, following page tokens."""
        filters = {
            "item_code": item_code,
            "outcome": outcome,
            "window_id": window_id,
            "decided_from": decided_from,
            "decided_to": decided_to,
        }
        for page in self._pages(filters, page_size, include_cases=False):
            yield from page["decisions"]

    def iter_records(
        self,
        item_code: str = "",
        outcome: str = "",
        window_id: str = "",
        decided_from: str | dt.datetime = "",
        decided_to: str | dt.datetime = "",
        page_size: int = 50,
    ) -> Iterator[dict[str, Any]]:
        """Like iter_decisions, with each case as received: {"decision": ..., "case": ...}
        (the shape of get_decision(..., include_case=True)). For replay and appeals."""
        filters = {
            "item_code": item_code,
            "outcome": outcome,
            "window_id": window_id,
            "decided_from": decided_from,
            "decided_to": decided_to,
        }
        for page in self._pages(filters, page_size, include_cases=True):
            for decision, case in zip(page["decisions"], page["cases"], strict=True):
                yield {"decision": decision, "case": case}

    def verify_audit_trail(self, from_seq: int = 0, to_seq: int = 0) -> dict[str, Any]:
        """Have the server re-check its audit trail (0 = from the first / to the latest):
        {"ok", "checked", "first_bad_seq" (0 when ok), "reason" ("" when ok)}."""
        resp = self._call(
            self._stub.VerifyAuditTrail,
            pb.VerifyAuditTrailRequest(from_seq=from_seq, to_seq=to_seq),
        )
        return {
            "ok": resp.ok,
            "checked": resp.checked,
            "first_bad_seq": resp.first_bad_seq,
            "reason": resp.reason,
            "purged": resp.purged,
        }

    def purge_cases(self, before: dt.datetime) -> dict[str, Any]:
        """Erase the cases of decisions made before `before` (aware datetime); the purge is
        recorded in the trail: {"purged": count, "seq": the purge record's seq}."""
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(before)
        resp = self._call(self._stub.PurgeCases, pb.PurgeCasesRequest(before=stamp))
        return {"purged": resp.purged, "seq": resp.seq}

    def consistency_proof(self, first: int, second: int = 0) -> dict[str, Any]:
        """{"second": the later signed head (TreeHead JSON), "proof": [hex, ...]}."""
        resp = self._call(
            self._stub.GetConsistencyProof,
            pb.GetConsistencyProofRequest(first_tree_size=first, second_tree_size=second),
        )
        return {
            "second": json_format.MessageToDict(resp.second, preserving_proto_field_name=True),
            "proof": list(resp.proof),
        }

    def seal_key(self) -> dict[str, Any]:
        """The public sealing key: {"key_id", "public_key" (raw 32 bytes), "public_key_pem"}."""
        resp = self._call(self._stub.GetSealKey, pb.GetSealKeyRequest())
        return {
            "key_id": resp.key_id,
            "public_key": bytes(resp.public_key),
            "public_key_pem": resp.public_key_pem,
        }

    def reload_rulesets(self) -> dict[str, Any]:
        """Ask the server to re-read its rules directory (admin)."""
        resp = self._call(self._stub.ReloadRulesets, pb.ReloadRulesetsRequest())
        return message_dict(resp)

    def ruleset_status(self) -> dict[str, Any]:
        """The serving rule set and the last reload attempt."""
        resp = self._call(self._stub.GetRulesetStatus, pb.GetRulesetStatusRequest())
        return message_dict(resp)


def _timestamp(field: str, value: str | dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    try:
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                raise ValueError("naive datetime: give a time zone")
            ts.FromDatetime(value.astimezone(dt.UTC))
        else:
            ts.FromJsonString(value)
    except ValueError as exc:
        raise ClientError("INVALID_ARGUMENT", f"{field}: not an RFC 3339 time: {exc}") from None
    return ts
