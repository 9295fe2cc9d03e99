"""The interface every audit store implements (SQLite today; a server database can follow)."""

from __future__ import annotations

import asyncio
import builtins
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: `miaopi audit verify` loads this without casework
    from miaopi_server.audit.record import PendingRecord, StoredRecord
    from miaopi_server.audit.seal import Sealer
    from miaopi_server.audit.treehead import TreeHead
    from miaopi_server.casework.model import Task


@dataclass(frozen=True)
class ListFilter:
    """Filters of ListDecisions; empty strings match everything. Times are fixed-width UTC."""

    item_code: str = ""
    outcome: str = ""
    window_id: str = ""
    decided_from: str = ""
    decided_to: str = ""


@dataclass(frozen=True)
class PublishedSet:
    """A published rule set as archived: every file's text by "<dir>/<path>" (the form a
    decision names its rule file in) and its item versions."""

    set_digest: str
    files: dict[str, str]  # path -> text, byte for byte
    versions: dict[str, str]  # "CODE@VERSION" -> item digest (RulesetRef.digest)
    first_published_at: str = ""  # fixed_time() of its first publication


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_bad_seq: int = 0
    reason: str = ""
    purged: int = 0  # records (of those checked) whose case was purged, by a purge event


class DuplicateRequest(Exception):
    """The window's request_id is already on record; `existing` is that record."""

    def __init__(self, existing: StoredRecord):
        super().__init__(existing.decision_id)
        self.existing = existing


class AuditStore(Protocol):
    sealer: Sealer

    def append(self, pending: PendingRecord) -> Future[StoredRecord]:
        """Resolve once the record is durable; fail with AuditUnavailable or DuplicateRequest."""
        ...

    def append_async(self, pending: PendingRecord) -> asyncio.Future[StoredRecord]:
        """`append` for a caller on the running loop; cancelling it keeps the record."""
        ...

    def get(self, decision_id: str) -> StoredRecord | None: ...

    def task(self, decision_id: str) -> tuple[Task, int] | None:
        """The casework task a decision opened and the seq of its last record; None for a
        case the rules closed at once (its decision record is the whole case)."""
        ...

    def find_request(self, window_id: str, request_id: str) -> StoredRecord | None:
        """The record of this window's request_id (idempotency keys are per window)."""
        ...

    def list(self, f: ListFilter, limit: int, before_seq: int = 0) -> list[StoredRecord]:
        """Newest first, only records with seq < before_seq when given."""
        ...

    def verify(self, from_seq: int = 1, to_seq: int = 0) -> Verification: ...

    def purge(self, before: str, by: str) -> StoredRecord:
        """Erase the cases of decisions made before `before`; returns the purge event."""
        ...

    def record_event(self, details: dict[str, Any], attachment: Any = None) -> StoredRecord:
        """Append an event of the trail ({"type": ..., ...}); returns it once durable."""
        ...

    def publish(self, published: PublishedSet, details: dict[str, Any]) -> StoredRecord:
        """Record a published rule set (and archive its files once per digest)."""
        ...

    def publish_new(self, published: PublishedSet, details: dict[str, Any]) -> StoredRecord | None:
        """`publish` unless the set is archived already (None), decided in the write
        transaction: processes and nodes starting together with one set record it once."""
        ...

    def publish_act(
        self, published: PublishedSet, details: dict[str, Any], act: str
    ) -> StoredRecord | None:
        """`publish` as the event of `act` unless the trail holds it (None), decided in the
        write transaction: the `--workers` processes carrying out one reload record it once."""
        ...

    def published_set(self, digest: str) -> PublishedSet | None:
        """The archived set by set digest or by the digest of an item version in it."""
        ...

    def consistency(self, first: int, second: int = 0) -> tuple[TreeHead, builtins.list[bytes]]:
        """The signed head of `second` records (0: the latest) and the RFC 9162 proof that
        the first `first` records are its prefix; ValueError when out of range."""
        ...

    def close(self) -> None: ...
