"""gRPC servicer: proto in, domain call, proto out. No decision logic lives here."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any, NoReturn

import grpc
import structlog
from google.protobuf import struct_pb2, timestamp_pb2

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc

from . import convert
from .audit.record import fixed_time
from .audit.store import AuditStore, ListFilter
from .errors import CaseInvalid, DecisionNotFound, FieldViolation, ItemNotFound, MiaopiError
from .recording import Recorder, decision_of
from .reload import CatalogHolder, ReloadResult, catalog_digest
from .status import to_status

log = structlog.get_logger("miaopi.service")
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # no DST since 1991
MAX_PAGE = 1000


def shanghai_today(now: dt.datetime) -> dt.date:
    return now.astimezone(SHANGHAI).date()


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> NoReturn:
    await context.abort_with_status(to_status(exc))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


class ApprovalService(pb_grpc.ApprovalServiceServicer):
    def __init__(
        self,
        holder: CatalogHolder,
        store: AuditStore,
        node_id: str,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ):
        self._holder = holder
        self._catalog = holder.current  # read per call: hot reload swaps the catalog
        self._store = store
        self._recorder = Recorder(store, node_id)
        self._clock = clock

    async def Decide(
        self, request: pb.DecideRequest, context: grpc.aio.ServicerContext
    ) -> pb.DecideResponse:
        started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            rpc="Decide", item_code=request.item_code[:64], window_id=request.window.window_id[:64]
        )
        facts = convert.struct_to_dict(request.facts)
        case = {
            "item_code": request.item_code,
            "facts": facts,
            "materials": list(request.materials),
        }
        window = {"window_id": request.window.window_id, "operator_id": request.window.operator_id}

        async def make_decision() -> pb.Decision:
            now = self._clock()
            decision = self._catalog().decide(
                request.item_code, facts, case["materials"], shanghai_today(now)
            )
            return convert.decision(decision, str(uuid.uuid4()), request.request_id, now)

        try:
            msg = await self._recorder.decide(request.request_id, case, window, make_decision)
        except (CaseInvalid, ItemNotFound) as exc:
            log.info(
                "decide.refused",
                error=type(exc).__name__,
                violations=len(getattr(exc, "violations", ())),
            )
            await _abort(context, exc)
        except MiaopiError as exc:
            log.warning("decide.failed", error=type(exc).__name__, detail=str(exc)[:200])
            await _abort(context, exc)
        except Exception as exc:
            log.exception("decide.crashed")
            await _abort(context, exc)
        log.info(
            "decision",
            decision_id=msg.decision_id,
            outcome=pb.Outcome.Name(msg.outcome),
            ruleset_version=msg.ruleset.version,
            ruleset_digest=msg.ruleset.digest,
            seq=msg.receipt.seq,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return pb.DecideResponse(decision=msg)

    async def ListItems(
        self, request: pb.ListItemsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListItemsResponse:
        catalog = self._catalog()
        today = shanghai_today(self._clock())
        return pb.ListItemsResponse(
            items=[convert.item_of(catalog, c, today) for c in catalog.codes]
        )

    async def GetItem(
        self, request: pb.GetItemRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetItemResponse:
        today = shanghai_today(self._clock())
        try:
            item = convert.item_of(self._catalog(), request.item_code, today)
        except (ItemNotFound, CaseInvalid) as exc:
            await _abort(context, exc)
        return pb.GetItemResponse(item=item)

    async def GetDecision(
        self, request: pb.GetDecisionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDecisionResponse:
        record = self._store.get(request.decision_id)
        if record is None:
            await _abort(context, DecisionNotFound(request.decision_id[:64]))
        return pb.GetDecisionResponse(decision=decision_of(record), case=_struct(record.case))

    async def ListDecisions(
        self, request: pb.ListDecisionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDecisionsResponse:
        size = min(request.page_size or 50, MAX_PAGE)
        try:
            before = (
                int(base64.urlsafe_b64decode(request.page_token).decode())
                if request.page_token
                else 0
            )
        except ValueError:
            await _abort(context, CaseInvalid([FieldViolation("page_token", "无效的分页标记")]))
        f = ListFilter(
            item_code=request.item_code,
            outcome=pb.Outcome.Name(request.outcome).removeprefix("OUTCOME_")
            if request.outcome
            else "",
            window_id=request.window_id,
            decided_from=fixed_time(request.decided_from.ToDatetime(dt.UTC))
            if request.HasField("decided_from")
            else "",
            decided_to=fixed_time(request.decided_to.ToDatetime(dt.UTC))
            if request.HasField("decided_to")
            else "",
        )
        records = self._store.list(f, size + 1, before)
        more = len(records) > size
        records = records[:size]
        token = (
            base64.urlsafe_b64encode(str(records[-1].seq).encode()).decode()
            if more and records
            else ""
        )
        resp = pb.ListDecisionsResponse(
            decisions=[decision_of(r) for r in records], next_page_token=token
        )
        if request.include_cases:
            resp.cases.extend(_struct(r.case) for r in records)
        return resp

    async def VerifyAuditTrail(
        self, request: pb.VerifyAuditTrailRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyAuditTrailResponse:
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
        )

    async def ReloadRulesets(
        self, request: pb.ReloadRulesetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReloadRulesetsResponse:
        return _reload_response(await self._holder.reload("rpc"))

    async def GetRulesetStatus(
        self, request: pb.GetRulesetStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRulesetStatusResponse:
        last = self._holder.last
        return pb.GetRulesetStatusResponse(
            catalog_digest=catalog_digest(self._catalog()),
            loaded_at=_timestamp(self._holder.loaded_at),
            last_reload=_reload_response(last),
            last_reload_at=_timestamp(last.at),
        )

    async def GetSealKey(
        self, request: pb.GetSealKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSealKeyResponse:
        sealer = self._store.sealer
        return pb.GetSealKeyResponse(
            key_id=sealer.key_id, public_key=sealer.public_raw, public_key_pem=sealer.public_pem
        )


def _struct(d: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(d)
    return s


def _reload_response(r: ReloadResult) -> pb.ReloadRulesetsResponse:
    return pb.ReloadRulesetsResponse(
        applied=r.applied,
        added=r.added,
        removed=r.removed,
        changed=r.changed,
        diagnostics=r.diagnostics,
        catalog_digest=r.catalog_digest,
    )


def _timestamp(when: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts
