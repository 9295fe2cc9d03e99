"""Record every decision before it is returned, and make request_id idempotent.

- A decision is appended to the audit trail and only then returned, with its receipt. If the
  append fails the caller gets AuditUnavailable and no decision (fail closed).
- A request_id seen before with the same case returns the original decision (same id, no new
  record); with a different case it raises RequestConflict naming the earlier decision.
  Concurrent duplicates wait for the first one, and the store's unique index on request_id is
  the last guard across processes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import json_format

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.audit.canonical import sha256_hex
from miaopi_server.audit.record import PendingRecord, StoredRecord, case_canonical, fixed_time
from miaopi_server.audit.store import AuditStore, DuplicateRequest
from miaopi_server.errors import RequestConflict


def receipt(record: StoredRecord) -> pb.Receipt:
    body = record.body
    return pb.Receipt(
        seq=record.seq,
        prev_hash=body["prev_hash"],
        case_digest=record.case_digest,
        node_id=body["node_id"],
        window=pb.Window(**body["window"]),
        record_hash=record.record_hash,
        key_id=record.key_id,
        signature=record.signature,
    )


def decision_of(record: StoredRecord) -> pb.Decision:
    msg = json_format.ParseDict(record.decision, pb.Decision())
    msg.receipt.CopyFrom(receipt(record))
    return msg


# A decision as returned to the window, and the same as proto3 JSON (receipt excluded): the
# form the audit record stores (convert.decision_json).
Decided = tuple[pb.Decision, dict[str, Any]]


class Recorder:
    def __init__(self, store: AuditStore, node_id: str):
        self.store = store
        self.node_id = node_id
        self._inflight: dict[str, asyncio.Future[None]] = {}

    async def decide(
        self,
        request_id: str,
        case: dict[str, Any],
        window: dict[str, str],
        make_decision: Callable[[], Awaitable[Decided]],
    ) -> pb.Decision:
        """Run `make_decision` (unless request_id answers from the record) and record it."""
        # The case's canonical form, hashed here for its digest and stored by the writer.
        case_json = case_canonical(case["item_code"], case["facts"], case["materials"])
        digest = sha256_hex(case_json)
        if not request_id:
            return await self._record(*await make_decision(), case, case_json, digest, window)
        while True:
            waiting = self._inflight.get(request_id)
            if waiting is None:
                break
            await asyncio.shield(waiting)  # the first caller decides; then look again
        existing = self.store.find_request(request_id)
        if existing is not None:
            return self._answer(existing, request_id, digest)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[request_id] = done
        try:
            return await self._record(*await make_decision(), case, case_json, digest, window)
        except DuplicateRequest as dup:  # recorded meanwhile by another process
            return self._answer(dup.existing, request_id, digest)
        finally:
            del self._inflight[request_id]
            done.set_result(None)

    def _answer(self, existing: StoredRecord, request_id: str, digest: str) -> pb.Decision:
        if existing.case_digest != digest:
            raise RequestConflict(request_id, existing.decision_id)
        return decision_of(existing)

    async def _record(
        self,
        decision: pb.Decision,
        as_json: dict[str, Any],
        case: dict[str, Any],
        case_json: bytes,
        digest: str,
        window: dict[str, str],
    ) -> pb.Decision:
        pending = PendingRecord(
            decision_id=decision.decision_id,
            request_id=decision.request_id,
            item_code=decision.item_code,
            outcome=pb.Outcome.Name(decision.outcome).removeprefix("OUTCOME_"),
            window_id=window.get("window_id", ""),
            decided_at=fixed_time(decision.decided_at.ToDatetime(dt.UTC)),
            decision=as_json,
            case=case,
            case_digest=digest,
            window=window,
            node_id=self.node_id,
            case_json=case_json,
        )
        # shield: a cancelled RPC must not cancel the write it already queued.
        record = await asyncio.shield(asyncio.wrap_future(self.store.append(pending)))
        decision.receipt.CopyFrom(receipt(record))
        return decision
