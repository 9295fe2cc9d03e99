"""A session's alert streams end with it: at sign-out, sign-out everywhere, idle expiry and
eviction; one session holds at most STREAMS_PER_SESSION of them."""

from __future__ import annotations

from miaopi_server.edge.console.calls import Credential
from miaopi_server.edge.console.sessions import STREAMS_PER_SESSION, Sessions


class Ender:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_streams_end_with_their_session_and_are_capped() -> None:
    sessions = Sessions()
    mine, other = (sessions.open(p, "supervisor", Credential(token="t")) for p in ("a", "b"))
    enders = [Ender() for _ in range(STREAMS_PER_SESSION + 1)]
    added = [sessions.add_stream(mine.id, e) for e in enders]
    assert added == [True] * STREAMS_PER_SESSION + [False]
    theirs = Ender()
    assert sessions.add_stream(other.id, theirs)
    sessions.remove_stream(mine.id, enders[0])  # a tab closed: its place is free
    assert sessions.add_stream(mine.id, enders[-1])
    sessions.close(mine.id)
    assert [e.calls for e in enders] == [0] + [1] * STREAMS_PER_SESSION
    assert theirs.calls == 0 and sessions.live(other.id) and not sessions.live(mine.id)
    assert not sessions.add_stream(mine.id, Ender())  # signed out: no new stream
    sessions.close_principal("b")
    assert theirs.calls == 1


def test_idle_expiry_and_eviction_end_streams() -> None:
    idle = Sessions(idle=-1.0)  # every session is past its idle time at once
    session = idle.open("a", "supervisor", Credential(token="t"))
    ender = Ender()
    assert not idle.add_stream(session.id, ender) and ender.calls == 0
    later = Sessions()
    session = later.open("a", "supervisor", Credential(token="t"))
    assert later.add_stream(session.id, ender)
    later._idle = -1.0  # it goes idle: the stream's next look at it ends the stream
    assert not later.live(session.id) and ender.calls == 1
    ender = Ender()
    full = Sessions(limit=1)
    first = full.open("a", "supervisor", Credential(token="t"))
    assert full.add_stream(first.id, ender)
    full.open("b", "supervisor", Credential(token="t"))  # evicts the first
    assert ender.calls == 1 and not full.live(first.id)


def test_a_look_at_liveness_is_not_activity() -> None:
    sessions = Sessions()
    session = sessions.open("a", "supervisor", Credential(token="t"))
    seen = session.seen
    assert sessions.live(session.id) and session.seen == seen
