"""Signed-in sessions, in this process's memory.

A session keeps the credential the principal signed in with, because every page action is
re-authenticated by the servicer like a gRPC call (calls.py); a credential must never reach
a disk, so sessions are not stored, and a restart signs everyone out. The cookie carries only
a random 256-bit session id (nothing to sign or decode); each session has its own CSRF token.
With --workers N only the first worker serves the console, so one table holds them all.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from miaopi_server.edge.console.calls import Credential

IDLE_SECONDS = 30 * 60  # signed out after this long without a request
MAX_AGE_SECONDS = 12 * 3600  # and after a working day, whatever happens
MAX_SESSIONS = 10_000  # beyond: the least recently used is signed out


@dataclass
class Session:
    id: str
    principal_id: str
    role: str
    credential: Credential
    csrf: str
    created: float
    seen: float
    flash: list[str] = field(default_factory=list)  # one-shot notices for the next page

    def csrf_ok(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    def __init__(
        self,
        idle: float = IDLE_SECONDS,
        max_age: float = MAX_AGE_SECONDS,
        limit: int = MAX_SESSIONS,
    ) -> None:
        self._idle, self._max_age, self._limit = idle, max_age, limit
        self._by_id: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, principal_id: str, role: str, credential: Credential) -> Session:
        now = time.monotonic()
        session = Session(
            secrets.token_urlsafe(32), principal_id, role, credential,
            secrets.token_urlsafe(32), now, now,
        )  # fmt: skip
        with self._lock:
            self._by_id[session.id] = session
            while len(self._by_id) > self._limit:
                self._by_id.popitem(last=False)
        return session

    def get(self, session_id: str) -> Session | None:
        """The live session of this id (its idle clock restarted), or None."""
        now = time.monotonic()
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            if now - session.seen > self._idle or now - session.created > self._max_age:
                del self._by_id[session_id]
                return None
            session.seen = now
            self._by_id.move_to_end(session_id)
            return session

    def close(self, session_id: str) -> None:
        with self._lock:
            self._by_id.pop(session_id, None)

    def close_principal(self, principal_id: str) -> None:
        """Sign a principal out everywhere (its credential stopped authenticating)."""
        with self._lock:
            for sid in [s.id for s in self._by_id.values() if s.principal_id == principal_id]:
                del self._by_id[sid]
