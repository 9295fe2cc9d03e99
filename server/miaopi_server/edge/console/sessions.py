"""Signed-in sessions, in this process's memory.

A session keeps the credential the principal signed in with, because every page action is
re-authenticated by the servicer like a gRPC call (calls.py); a credential must never reach
a disk, so sessions are not stored, and a restart signs everyone out. The cookie carries only
a random 256-bit session id (nothing to sign or decode); each session has its own CSRF token.
With --workers N only the first worker serves the console, so one table holds them all.

A session's open alert streams (supervision.py) are registered with it, at most
STREAMS_PER_SESSION, and told to end when it ends (sign-out, expiry, eviction): a stream
must not outlive the sign-in that opened it.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from miaopi_server.edge.console.calls import Credential

IDLE_SECONDS = 30 * 60  # signed out after this long without a request
MAX_AGE_SECONDS = 12 * 3600  # and after a working day, whatever happens
MAX_SESSIONS = 10_000  # beyond: the least recently used is signed out
STREAMS_PER_SESSION = 4  # open alert streams (tabs) one session may hold


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
        self._streams: dict[str, list[Callable[[], None]]] = {}  # session id -> enders
        self._lock = threading.Lock()

    def open(self, principal_id: str, role: str, credential: Credential) -> Session:
        now = time.monotonic()
        session = Session(
            secrets.token_urlsafe(32), principal_id, role, credential,
            secrets.token_urlsafe(32), now, now,
        )  # fmt: skip
        ended: list[Callable[[], None]] = []
        with self._lock:
            self._by_id[session.id] = session
            while len(self._by_id) > self._limit:
                ended += self._drop(next(iter(self._by_id)))
        _end(ended)
        return session

    def get(
        self, session_id: str, admit: Callable[[Session], bool] = lambda _: True
    ) -> Session | None:
        """The live session of this id (its idle clock restarted), or None; also None, the
        session untouched, when `admit` refuses this request (a certificate session's cookie
        without its certificate must not even keep the session alive)."""
        with self._lock:
            session = self._live(session_id)
            if session is None or not admit(session):
                return None
            session.seen = time.monotonic()
            self._by_id.move_to_end(session_id)
            return session

    def live(self, session_id: str) -> bool:
        """Whether the session is still signed in; unlike get(), a look that does not count
        as activity (an open stream must not keep its session from going idle)."""
        with self._lock:
            return self._live(session_id) is not None

    def add_stream(self, session_id: str, end: Callable[[], None]) -> bool:
        """Register an open stream of the session; `end` is called (from any thread) when
        the session ends. False, nothing registered: the session is not live or already
        holds STREAMS_PER_SESSION streams."""
        with self._lock:
            if self._live(session_id) is None:
                return False
            enders = self._streams.setdefault(session_id, [])
            if len(enders) >= STREAMS_PER_SESSION:
                return False
            enders.append(end)
            return True

    def remove_stream(self, session_id: str, end: Callable[[], None]) -> None:
        with self._lock:
            enders = self._streams.get(session_id, [])
            if end in enders:
                enders.remove(end)
            if not enders:
                self._streams.pop(session_id, None)

    def close(self, session_id: str) -> None:
        with self._lock:
            ended = self._drop(session_id)
        _end(ended)

    def close_principal(self, principal_id: str) -> None:
        """Sign a principal out everywhere (its credential stopped authenticating)."""
        ended: list[Callable[[], None]] = []
        with self._lock:
            for sid in [s.id for s in self._by_id.values() if s.principal_id == principal_id]:
                ended += self._drop(sid)
        _end(ended)

    def _live(self, session_id: str) -> Session | None:
        """The session if live; an expired one is dropped, its streams told to end. Called
        with the lock held."""
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > self._idle or now - session.created > self._max_age:
            _end(self._drop(session_id))  # enders only schedule: safe under the lock
            return None
        return session

    def _drop(self, session_id: str) -> list[Callable[[], None]]:
        """Forget the session; the enders of its streams, to call. With the lock held."""
        self._by_id.pop(session_id, None)
        return self._streams.pop(session_id, [])


def _end(enders: list[Callable[[], None]]) -> None:
    for end in enders:
        end()
