"""Record every decision before it is returned, and make request_id idempotent.

- A decision is appended to the audit trail and only then returned, with its record. If the
  append fails the caller gets AuditUnavailable and no decision (fail closed).
- A request_id the same window sent before with the same case returns the original record (no
  new decision, no new record); with a different case it raises RequestConflict naming the
  earlier decision. Keys are per window: another window's request_id never answers from, nor
  blocks, this window's. Concurrent duplicates wait for the first one, and the store's unique
  index on (window_id, request_id) is the last guard across processes.

Works on domain objects only: the record's decision JSON comes from `decision_json`, the one
builder of that shape (its canonical bytes, from cached parts, by `decision_canonical`); the
edge turns what comes back into protobuf.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from miaopi_server.audit.canonical import canonical, sha256_hex
from miaopi_server.audit.decision_json import decision_canonical
from miaopi_server.audit.record import (
    PendingRecord,
    StoredRecord,
    case_canonical,
    case_record,
    fixed_time,
)
from miaopi_server.audit.store import AuditStore, DuplicateRequest
from miaopi_server.casework.codec import task_to_json
from miaopi_server.casework.model import Task
from miaopi_server.decision.decide import Decision
from miaopi_server.errors import RequestConflict


@dataclass(frozen=True)
class Decided:
    """A decision just made, with what the server adds to it."""

    decision: Decision
    decision_id: str
    decided_at: dt.datetime


@dataclass(frozen=True)
class Recorded:
    """A durable record, and the decision made for it now (None when the record answers a
    repeated request_id: the decision is then the record's)."""

    record: StoredRecord
    decided: Decided | None


# The task a decision opens (casework.opening.open_task with the item and the window's
# jurisdiction; None when the rules closed the case at once), given by the edge; stored in the
# decision's own commit.
Opener = Callable[[Decided, dict[str, str]], Task | None]


class Recorder:
    def __init__(self, store: AuditStore, node_id: str, opener: Opener | None = None):
        self.store = store
        self.node_id = node_id
        self._opener = opener
        self._inflight: dict[tuple[str, str], asyncio.Future[None]] = {}

    async def decide(
        self,
        request_id: str,
        case: dict[str, Any],
        window: dict[str, str],
        make_decision: Callable[[], Decided | Awaitable[Decided]],
    ) -> Recorded:
        """Run `make_decision` (unless request_id answers from the record) and record it.
        It may be a coroutine function (one that looks up shared data first): a repeated
        request_id then answers from the record without a new lookup, so every lookup made
        is one a record holds."""
        # The case as recorded (materials as a set), hashed here for its digest and stored by
        # the writer.
        case = case_record(case["item_code"], case["facts"], case["materials"])
        case_json = canonical(case)
        digest = sha256_hex(case_json)
        if not request_id:
            decided = await _made(make_decision)
            return await self._record(decided, request_id, case, case_json, digest, window)
        key = (window.get("window_id", ""), request_id)
        while True:
            waiting = self._inflight.get(key)
            if waiting is None:
                break
            await asyncio.shield(waiting)  # the first caller decides; then look again
        existing = self.store.find_request(*key)
        if existing is not None:
            return self._answer(existing, request_id, digest)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = done
        try:
            decided = await _made(make_decision)
            return await self._record(decided, request_id, case, case_json, digest, window)
        except DuplicateRequest as dup:  # recorded meanwhile by another process
            return self._answer(dup.existing, request_id, digest)
        finally:
            del self._inflight[key]
            done.set_result(None)

    def _answer(self, existing: StoredRecord, request_id: str, digest: str) -> Recorded:
        if existing.case_digest != digest and _recorded_digest(existing.case) != digest:
            raise RequestConflict(request_id, existing.decision_id)
        return Recorded(existing, None)

    async def _record(
        self,
        decided: Decided,
        request_id: str,
        case: dict[str, Any],
        case_json: bytes,
        digest: str,
        window: dict[str, str],
    ) -> Recorded:
        d = decided.decision
        task = self._opener(decided, window) if self._opener is not None else None
        pending = PendingRecord(
            decision_id=decided.decision_id,
            request_id=request_id,
            item_code=d.item_code,
            outcome=d.outcome,
            window_id=window.get("window_id", ""),
            decided_at=fixed_time(decided.decided_at),
            case=case,
            case_json=case_json,
            case_digest=digest,
            window=window,
            node_id=self.node_id,
            decision_json=decision_canonical(
                d, decided.decision_id, request_id, decided.decided_at
            ),
            task=task,
            task_json=task_to_json(task) if task is not None else "",
        )
        # A cancelled RPC does not withdraw the write it queued (append_async's future).
        record = await self.store.append_async(pending)
        return Recorded(record, decided)


async def _made(make_decision: Callable[[], Decided | Awaitable[Decided]]) -> Decided:
    made = make_decision()
    return made if isinstance(made, Decided) else await made


def _recorded_digest(stored: dict[str, Any]) -> str | None:
    """The digest a stored case has in today's form: records written before materials were
    recorded as a set kept them in the order received, under a digest of that order."""
    try:
        return sha256_hex(case_canonical(stored["item_code"], stored["facts"], stored["materials"]))
    except (KeyError, TypeError):
        return None
