"""gRPC servicer: proto in, domain call, proto out. No decision logic lives here."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable

import grpc
import structlog

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc

from . import convert
from .catalog import Catalog
from .errors import CaseInvalid, ItemNotFound
from .status import to_status

log = structlog.get_logger("miaopi.service")
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # no DST since 1991


def shanghai_today(now: dt.datetime) -> dt.date:
    return now.astimezone(SHANGHAI).date()


class ApprovalService(pb_grpc.ApprovalServiceServicer):
    def __init__(self, catalog: Callable[[], Catalog],
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)):
        self._catalog = catalog  # a getter: hot reload swaps the catalog behind it
        self._clock = clock

    async def Decide(self, request: pb.DecideRequest,
                     context: grpc.aio.ServicerContext) -> pb.DecideResponse:
        started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(rpc="Decide", item_code=request.item_code[:64],
                                               window_id=request.window.window_id[:64])
        now = self._clock()
        try:
            decision = self._catalog().decide(
                request.item_code, convert.struct_to_dict(request.facts),
                list(request.materials), shanghai_today(now))
        except CaseInvalid as exc:
            log.info("decide.invalid", violations=len(exc.violations))
            await context.abort_with_status(to_status(exc))
            raise  # unreachable: abort raises
        except ItemNotFound as exc:
            log.info("decide.not_found")
            await context.abort_with_status(to_status(exc))
            raise
        except Exception as exc:
            log.exception("decide.failed")
            await context.abort_with_status(to_status(exc))
            raise
        decision_id = str(uuid.uuid4())
        msg = convert.decision(decision, decision_id, request.request_id, now)
        log.info("decision", decision_id=decision_id, outcome=decision.outcome,
                 ruleset_version=decision.version, ruleset_digest=decision.digest,
                 duration_ms=round((time.perf_counter() - started) * 1000, 3))
        return pb.DecideResponse(decision=msg)

    async def ListItems(self, request: pb.ListItemsRequest,
                        context: grpc.aio.ServicerContext) -> pb.ListItemsResponse:
        catalog = self._catalog()
        return pb.ListItemsResponse(
            items=[convert.item(catalog.items[code].item) for code in sorted(catalog.items)])

    async def GetItem(self, request: pb.GetItemRequest,
                      context: grpc.aio.ServicerContext) -> pb.GetItemResponse:
        try:
            loaded = self._catalog().get(request.item_code)
        except ItemNotFound as exc:
            await context.abort_with_status(to_status(exc))
            raise
        return pb.GetItemResponse(item=convert.item(loaded.item))
