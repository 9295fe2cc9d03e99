"""gRPC servicer: proto in, domain call, proto out. No decision logic lives here."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import structlog
from google.protobuf.message import DecodeError

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_server.audit.record import fixed_time
from miaopi_server.audit.recorder import Decided, Recorder
from miaopi_server.audit.store import AuditStore
from miaopi_server.clock import shanghai_today, utc_now
from miaopi_server.decision.sourced import Gathered
from miaopi_server.edge import convert
from miaopi_server.edge.auth import (
    ANONYMOUS,
    Authenticator,
    PermissionDenied,
    Principal,
    RateLimited,
    RateLimiter,
    Unauthenticated,
    failure_limiter,
    may_see,
    peer_address,
)
from miaopi_server.edge.dryrun import dry_run
from miaopi_server.edge.opener import CaseOpener
from miaopi_server.edge.requests import (
    decision_id_violations,
    encode_page_token,
    envelope_violations,
    parse_list_request,
)
from miaopi_server.edge.status import abort
from miaopi_server.errors import (
    CaseInvalid,
    DecisionNotFound,
    FieldViolation,
    ItemNotFound,
    MiaopiError,
    RulesetNotFound,
)
from miaopi_server.ops.logs import LogSampler
from miaopi_server.ops.lookups import gather
from miaopi_server.ops.metrics import Metrics
from miaopi_server.ops.publish import RPC

if TYPE_CHECKING:  # the relay's type only: its module brings the metrics library
    from miaopi_server.ops.workers import Relay
from miaopi_server.ops.reload import CatalogHolder, catalog_digest
from miaopi_server.rules.model import Item
from miaopi_server.sources.model import Provider

log = structlog.get_logger("miaopi.service")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ApprovalService"].full_name


class ApprovalService(pb_grpc.ApprovalServiceServicer):  # type: ignore[misc]  # no stubs
    def __init__(
        self,
        holder: CatalogHolder,
        store: AuditStore,
        node_id: str,
        authenticator: Authenticator | None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        relay: Relay | None = None,
        provider: Provider | None = None,
        licences_deadline: float = 1.0,
        metrics: Metrics | None = None,
    ):
        self._auth = authenticator  # None only with --insecure-no-auth
        self._limiter = limiter or RateLimiter(0, 0)
        self._failures = failure_limiter()  # failed authentications, per peer address
        self._refusals = LogSampler()
        self._holder = holder
        self._catalog = holder.current  # read per call: hot reload swaps the catalog
        self._store = store
        # Every decision recorded opens its casework (or closes it at once), in its commit.
        self.opener = CaseOpener(holder, authenticator)
        self._recorder = Recorder(store, node_id, self.opener)
        self._clock = clock
        self._relay = relay  # --workers: the other processes carry out the same reload
        self._provider = provider  # shared data (四免); None: cases decide on their own facts
        self._licences_deadline = licences_deadline  # seconds the e-license library may take
        self._metrics = metrics  # --metrics-listen; None: nothing is measured

    async def guard(self, context: grpc.aio.ServicerContext, rpc: str) -> Principal:
        """Authenticate, authorise the RPC for the principal's role, apply its rate limit.
        Failed authentications are limited per peer address, and the refusal lines a flood
        would write are sampled (at most a few per kind every few seconds, with a count).
        ReviewService checks its callers with this too."""
        principal: Principal | None = None
        peer = ""
        try:
            if self._auth is None:
                principal = ANONYMOUS
            else:
                peer = peer_address(context.peer() or "")
                names = [
                    n.decode("utf-8", "replace")
                    for n in (context.auth_context() or {}).get("x509_common_name", [])
                ]
                try:
                    principal = self._auth.authenticate(context.invocation_metadata() or (), names)
                except Unauthenticated:
                    self._failures.take(peer)  # past the peer's budget: RateLimited instead
                    raise
            if not principal.may_call(rpc):
                raise PermissionDenied(f"角色 {principal.role} 不能调用 {rpc}")
            self._limiter.take(principal.id)
        except (Unauthenticated, PermissionDenied, RateLimited) as exc:
            error = type(exc).__name__
            who = principal.id if principal is not None else "unauthenticated"
            suppressed = self._refusals.admit(f"{error}/{who}")
            if suppressed is not None:
                # The reason, principal and peer address only: never the credential itself.
                log.warning(
                    "auth.refused",
                    rpc=rpc,
                    error=error,
                    reason=str(exc),
                    **({"principal": who} if principal is not None else {"peer": peer}),
                    suppressed=suppressed,
                )
            await abort(context, exc)
        structlog.contextvars.bind_contextvars(principal=principal.id)
        return principal

    async def deny(self, context: grpc.aio.ServicerContext, rpc: str, reason: str) -> NoReturn:
        log.warning("auth.refused", rpc=rpc, error="PermissionDenied", reason=reason)
        await abort(context, PermissionDenied(reason))

    async def Decide(
        self, request: pb.DecideRequest, context: grpc.aio.ServicerContext
    ) -> pb.DecideResponse:
        started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            rpc="Decide", item_code=request.item_code[:64], window_id=request.window.window_id[:64]
        )
        principal = await self.guard(context, "Decide")
        if not principal.may_decide(request.item_code):
            await self.deny(context, "Decide", f"未获授权办理事项 {request.item_code[:64]}")
        if principal.role == "window" and request.window.window_id not in ("", principal.window_id):
            await self.deny(context, "Decide", "请求中的窗口与认证身份不一致")
        envelope = envelope_violations(request)
        try:
            facts = convert.facts_from_struct(request.facts)
        except CaseInvalid as exc:
            await abort(context, CaseInvalid([*envelope, *exc.violations]))
        case = {
            "item_code": request.item_code,
            "facts": facts,
            "materials": list(request.materials),
        }
        window = {
            "window_id": principal.window_id or request.window.window_id,
            "operator_id": request.window.operator_id,
            "principal_id": principal.id,
        }

        if envelope:  # reported together with whatever is wrong in the case itself
            await abort(context, self._with_case_problems(envelope, case))

        consent = request.consent.reference

        async def make_decision() -> Decided:
            now = self._clock()
            today = shanghai_today(now)
            catalog = self._catalog()  # one catalog for the lookups and the decision
            gathered = None
            if consent and self._provider is not None:
                item = catalog.select(request.item_code, facts, today).item
                if item.sources or item.e_license_holder:
                    gathered = await self._look_up(item, facts, consent)
            decision = catalog.decide(request.item_code, facts, case["materials"], today, gathered)
            return Decided(decision, random_uuid(), now)

        try:
            recorded = await self._recorder.decide(request.request_id, case, window, make_decision)
            resp = convert.decide_response(recorded)
        except (CaseInvalid, ItemNotFound) as exc:
            log.info(
                "decide.refused",
                error=type(exc).__name__,
                violations=len(getattr(exc, "violations", ())),
            )
            await abort(context, exc)
        except MiaopiError as exc:
            log.warning("decide.failed", error=type(exc).__name__, detail=str(exc)[:200])
            await abort(context, exc)
        except Exception as exc:
            log.exception("decide.crashed")
            await abort(context, exc)
        took = time.perf_counter() - started
        if self._metrics is not None and recorded.decided is not None:  # not a repeat
            d = recorded.decided.decision
            self._metrics.decided(d.item_code, d.outcome, took)
        msg = resp.decision
        log.info(
            "decision",
            decision_id=msg.decision_id,
            outcome=pb.Outcome.Name(msg.outcome),
            ruleset_version=msg.ruleset.version,
            ruleset_digest=msg.ruleset.digest,
            seq=msg.receipt.seq,
            duration_ms=round(took * 1000, 3),
        )
        return resp

    async def _look_up(self, item: Item, facts: dict[str, Any], consent: str) -> Gathered | None:
        """The item's lookups, in a thread: a source waits up to its own deadline, and the
        event loop serves other calls meanwhile."""
        started = time.perf_counter()
        gathered = await asyncio.get_running_loop().run_in_executor(
            None, gather, item, facts, consent, self._provider, self._licences_deadline
        )
        if gathered is not None:
            # Which sources answered how: never the key or what they said.
            log.info(
                "sources.looked_up",
                lookups={lk.source: lk.status for lk in gathered.lookups},
                licences=gathered.licences_status,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
        return gathered

    def _with_case_problems(
        self, violations: list[FieldViolation], case: dict[str, Any]
    ) -> CaseInvalid:
        today = shanghai_today(self._clock())
        try:
            self._catalog().check(case["item_code"], case["facts"], case["materials"], today)
        except CaseInvalid as exc:
            return CaseInvalid([*violations, *exc.violations])
        except ItemNotFound:
            pass
        return CaseInvalid(violations)

    async def ListItems(
        self, request: pb.ListItemsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListItemsResponse:
        await self.guard(context, "ListItems")
        catalog = self._catalog()
        today = shanghai_today(self._clock())
        return pb.ListItemsResponse(
            items=[convert.item_of(catalog, c, today) for c in catalog.codes]
        )

    async def GetItem(
        self, request: pb.GetItemRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetItemResponse:
        await self.guard(context, "GetItem")
        today = shanghai_today(self._clock())
        try:
            item = convert.item_of(self._catalog(), request.item_code, today)
        except (ItemNotFound, CaseInvalid) as exc:
            await abort(context, exc)
        return pb.GetItemResponse(item=item)

    async def GetDecision(
        self, request: pb.GetDecisionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDecisionResponse:
        principal = await self.guard(context, "GetDecision")
        if bad := decision_id_violations(request.decision_id):
            await abort(context, CaseInvalid(bad, subject="查询请求"))
        # Store reads run in a thread: a stalled database must not freeze the event loop.
        record = await asyncio.to_thread(self._store.get, request.decision_id)
        if record is None:
            await abort(context, DecisionNotFound(request.decision_id[:64]))
        if principal.role == "reviewer":
            found = await asyncio.to_thread(self._store.task, record.decision_id)
            task = found[0] if found else self.opener.closed_at_once(record)
            if not may_see(principal, task):
                await self.deny(context, "GetDecision", "该办件不在授权范围内")
        elif not principal.sees_everything and record.window["window_id"] != principal.window_id:
            await self.deny(context, "GetDecision", "只能查看本窗口的决定")
        return pb.GetDecisionResponse(
            decision=convert.decision_of(record),
            case=convert.struct(record.case),
            case_purged=record.case_purged,
        )

    async def ListDecisions(
        self, request: pb.ListDecisionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDecisionsResponse:
        principal = await self.guard(context, "ListDecisions")
        if not principal.sees_everything and request.window_id not in ("", principal.window_id):
            await self.deny(context, "ListDecisions", "只能查看本窗口的决定")
        window_id = request.window_id if principal.sees_everything else principal.window_id
        query, violations = parse_list_request(request, window_id)
        if query is None:
            await abort(context, CaseInvalid(violations, subject="查询请求"))
        size = query.page_size
        records = await asyncio.to_thread(
            self._store.list, query.filter, size + 1, query.before_seq
        )
        more = len(records) > size
        records = records[:size]
        token = encode_page_token(records[-1].seq) if more and records else ""
        resp = pb.ListDecisionsResponse(
            decisions=[convert.decision_of(r) for r in records],
            next_page_token=token,
            case_purged=[r.case_purged for r in records],
        )
        if request.include_cases:
            resp.cases.extend(convert.struct(r.case) for r in records)
        return resp

    async def VerifyAuditTrail(
        self, request: pb.VerifyAuditTrailRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyAuditTrailResponse:
        await self.guard(context, "VerifyAuditTrail")
        result = await asyncio.get_running_loop().run_in_executor(
            None, self._store.verify, request.from_seq or 1, request.to_seq
        )
        log.info(
            "audit.verified",
            ok=result.ok,
            checked=result.checked,
            first_bad_seq=result.first_bad_seq,
        )
        return pb.VerifyAuditTrailResponse(
            ok=result.ok,
            checked=result.checked,
            first_bad_seq=result.first_bad_seq,
            reason=result.reason,
            purged=result.purged,
        )

    async def PurgeCases(
        self, request: pb.PurgeCasesRequest, context: grpc.aio.ServicerContext
    ) -> pb.PurgeCasesResponse:
        principal = await self.guard(context, "PurgeCases")
        if not request.HasField("before"):
            await abort(context, CaseInvalid([FieldViolation("before", "required")]))
        try:
            before = request.before.ToDatetime(tzinfo=dt.UTC)
        except (ValueError, OverflowError):
            await abort(context, CaseInvalid([FieldViolation("before", "not a valid time")]))
        if before > self._clock():
            await abort(context, CaseInvalid([FieldViolation("before", "is in the future")]))
        try:
            event = await asyncio.get_running_loop().run_in_executor(
                None, self._store.purge, fixed_time(before), principal.id
            )
        except MiaopiError as exc:  # AuditUnavailable: nothing was erased
            await abort(context, exc)
        purged = json.loads(event.body_json)["event"]["purged"]
        log.warning("audit.purged", purged=purged, seq=event.seq, before=fixed_time(before))
        return pb.PurgeCasesResponse(purged=purged, seq=event.seq)

    async def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetConsistencyProofResponse:
        await self.guard(context, "GetConsistencyProof")
        try:
            head, proof = await asyncio.get_running_loop().run_in_executor(
                None, self._store.consistency, request.first_tree_size, request.second_tree_size
            )
        except ValueError as exc:
            await abort(context, CaseInvalid([FieldViolation("first_tree_size", str(exc))]))
        return pb.GetConsistencyProofResponse(
            second=convert.tree_head(head), proof=[h.hex() for h in proof]
        )

    async def ReloadRulesets(
        self, request: pb.ReloadRulesetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReloadRulesetsResponse:
        principal = await self.guard(context, "ReloadRulesets")
        result = await self._holder.reload_own(RPC, principal.id, self._relay)
        return convert.reload_response(result)

    async def GetRulesetStatus(
        self, request: pb.GetRulesetStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRulesetStatusResponse:
        await self.guard(context, "GetRulesetStatus")
        last = self._holder.last
        return pb.GetRulesetStatusResponse(
            catalog_digest=catalog_digest(self._catalog()),
            loaded_at=convert.timestamp(self._holder.loaded_at),
            last_reload=convert.reload_response(last),
            last_reload_at=convert.timestamp(last.at),
        )

    async def DryRunDecide(
        self, request: pb.DryRunDecideRequest, context: grpc.aio.ServicerContext
    ) -> pb.DryRunDecideResponse:
        started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            rpc="DryRunDecide", item_code=request.case.item_code[:64]
        )
        principal = await self.guard(context, "DryRunDecide")
        try:
            resp = await dry_run(request, principal, self._catalog(), self._store, self._clock)
        except (CaseInvalid, ItemNotFound) as exc:
            log.info("dry_run.refused", error=type(exc).__name__)
            await abort(context, exc)
        except MiaopiError as exc:  # AuditUnavailable: no answer without the event
            log.warning("dry_run.failed", error=type(exc).__name__, detail=str(exc)[:200])
            await abort(context, exc)
        log.info(
            "dry_run",
            outcome=pb.Outcome.Name(resp.decision.outcome),
            ruleset_version=resp.decision.ruleset.version,
            event_seq=resp.event_seq,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return resp

    async def GetPublishedRules(
        self, request: pb.GetPublishedRulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPublishedRulesResponse:
        await self.guard(context, "GetPublishedRules")
        digest = request.digest.strip()
        if not digest:
            await abort(context, CaseInvalid([FieldViolation("digest", "required")], "查询请求"))
        found = await asyncio.get_running_loop().run_in_executor(
            None, self._store.published_set, digest
        )
        if found is None:
            await abort(context, RulesetNotFound(f"没有摘要为 {digest[:80]} 的已发布规则集"))
        return pb.GetPublishedRulesResponse(
            set_digest=found.set_digest,
            files=[pb.RuleSetFile(path=p, content=t) for p, t in sorted(found.files.items())],
            first_published_at=found.first_published_at,
            versions=found.versions,
        )

    async def GetSealKey(
        self, request: pb.GetSealKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSealKeyResponse:
        await self.guard(context, "GetSealKey")
        sealer = self._store.sealer
        return pb.GetSealKeyResponse(
            key_id=sealer.key_id, public_key=sealer.public_raw, public_key_pem=sealer.public_pem
        )


def random_uuid() -> str:
    """str(uuid.uuid4()): the same random version-4 form from os.urandom, at half its cost."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_MALFORMED = object()


def add_to_server(service: ApprovalService, server: grpc.aio.Server) -> None:
    add_service(service, server, pb, "ApprovalService")


def add_service(service: Any, server: grpc.aio.Server, module: Any, name: str) -> None:
    """Register the servicer of service `name` (declared in the generated `module`) like the
    generated add_..._to_server, except that a request that is not a valid protobuf message
    gets INVALID_ARGUMENT instead of UNKNOWN with a stack detail, and an unexpected exception
    in any RPC gets INTERNAL with a generic message (the exception is logged, its text never
    sent)."""

    def lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        def deserialize(data: bytes) -> Any:
            try:
                return parse(data)
            except DecodeError:
                return _MALFORMED

        return deserialize

    def guarded(name: str, impl: Callable[..., Any]) -> Callable[..., Any]:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if request is _MALFORMED:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "请求不是有效的 miaopi.v1 消息"
                )
            try:
                return await impl(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                log.exception("rpc.crashed", rpc=name)
                await abort(context, exc)

        return handle

    handlers = {}
    descriptor = module.DESCRIPTOR.services_by_name[name]
    for method in descriptor.methods:
        request_type = getattr(module, method.input_type.name)
        response_type = getattr(module, method.output_type.name)
        # A server-streaming RPC writes its messages with context.write and returns None.
        make = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            guarded(method.name, getattr(service, method.name)),
            request_deserializer=lenient(request_type.FromString),
            response_serializer=response_type.SerializeToString,
        )
    full_name = descriptor.full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(full_name, handlers),))
    # As the generated add_..._to_server does: registered methods skip the generic lookup.
    server.add_registered_method_handlers(full_name, handlers)
