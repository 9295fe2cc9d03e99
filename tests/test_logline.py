"""ops/logline.py against the structlog chain it replaced, on generated events: the same lines.

The reference is the chain (and the render_json) ops/logs.py configured for JSON before:
structlog's own merge_contextvars, add_log_level, TimeStamper(iso, utc), format_exc_info.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import json
import sys
import types
from collections.abc import MutableMapping
from typing import Any
from unittest import mock

import orjson
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miaopi_server.ops.logline import IsoStamps, json_line, logger_class

# --- the old chain, as ops/logs.py had it ---------------------------------------------------


def _old_fallback(obj: Any) -> Any:
    structlogged = getattr(obj, "__structlog__", None)
    return structlogged() if structlogged is not None else repr(obj)


_OLD_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _old_render_json(event: Any, **_: Any) -> str:
    try:
        return orjson.dumps(event, default=_old_fallback, option=_OLD_OPTIONS).decode()
    except TypeError:
        return json.dumps(event, default=_old_fallback, ensure_ascii=False)


def _old_chain(extra: dict[str, Any]) -> list[Any]:
    def add_extra(_l: Any, _n: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.update(extra)
        return event

    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        *([add_extra] if extra else []),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(serializer=_old_render_json),
    ]


def _old_line(extra: dict[str, Any], method: str, event: dict[str, Any], ns: int) -> str:
    """The old chain's line, with datetime.now (which TimeStamper calls) fixed at `ns`."""
    frozen = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Any:
            assert tz is dt.UTC
            return frozen

    clock = types.SimpleNamespace(datetime=Frozen, timezone=dt.timezone)
    out: Any = event
    with mock.patch.object(structlog.processors, "datetime", clock):
        for proc in _old_chain(extra):
            out = proc(None, method, out)
    return str(out) + "\n"


def _new_line(extra: dict[str, Any], method: str, event: dict[str, Any], ns: int) -> str:
    line = json_line(extra, clock=lambda: ns)(None, method, event)
    return line.decode() if isinstance(line, bytes) else line


# --- generated events -----------------------------------------------------------------------


@dataclasses.dataclass
class _Point:
    x: int
    label: str


class _Own:
    def __structlog__(self) -> str:
        return "own form"


_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),  # beyond 64 bits: json.dumps' path
    st.floats(allow_nan=False),
    st.text(),
    st.text(_surrogates, max_size=2),  # orjson refuses them: json.dumps' path
    st.sampled_from([dt.date(2026, 11, 23), _Point(1, "点"), _Own(), {1, 2}, b"bytes"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)
_keys = st.one_of(
    st.sampled_from(["event", "level", "timestamp", "rpc", "worker", "exception", "exc_info"]),
    st.text(max_size=12),
)
_methods = st.sampled_from(
    ["debug", "info", "warning", "warn", "error", "exception", "critical", "msg", "fatal"]
)
# Around now, both ends of datetime's range, and whole seconds (isoformat drops ".000000").
_instants = st.one_of(
    st.integers(min_value=0, max_value=253402300799_999_999_999),
    st.integers(min_value=0, max_value=253402300799).map(lambda s: s * 1_000_000_000),
    st.integers(min_value=1_700_000_000_000_000_000, max_value=1_900_000_000_000_000_000),
)


def _raised() -> BaseException:
    try:
        raise ValueError("bad 值")
    except ValueError as exc:
        return exc


_exc_infos = st.sampled_from(["exception", "tuple", True, False, None, 0, "text"])


def _exc_info(kind: Any) -> Any:
    exc = _raised()
    if kind == "exception":
        return exc
    if kind == "tuple":
        return (type(exc), exc, exc.__traceback__)
    return kind


def _run_in_context(bound: dict[str, Any], unbound: list[str], fn: Any) -> Any:
    """fn() in a fresh context with `bound` bound and `unbound` bound then unbound."""

    def inside() -> Any:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**bound, **dict.fromkeys(unbound, "gone"))
        structlog.contextvars.unbind_contextvars(*unbound)
        return fn()

    return contextvars.Context().run(inside)


def _same_lines(old: str, new: str, context_keys: set[str]) -> None:
    """Same keys and values; the same key order too, except where the contextvars' keys go
    (the old chain walked the context in its hash order, the new one binds' order)."""
    assert new.endswith("\n") and old.endswith("\n") and "\n" not in new[:-1]
    old_pairs = json.loads(old, object_pairs_hook=list)
    new_pairs = json.loads(new, object_pairs_hook=list)
    assert dict(new_pairs) == dict(old_pairs)
    assert [k for k, _ in new_pairs if k not in context_keys] == [
        k for k, _ in old_pairs if k not in context_keys
    ]
    if len(context_keys) <= 1:
        assert new == old


class TestJsonLine:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        event=st.dictionaries(_keys, _values, max_size=6),
        name=st.text(max_size=10),
        bound=st.dictionaries(_keys, _values, max_size=4),
        unbound=st.lists(st.text(min_size=1, max_size=6), max_size=2),
        extra=st.one_of(st.just({}), st.dictionaries(_keys, _values, min_size=1, max_size=2)),
        method=_methods,
        ns=_instants,
        exc_kind=st.one_of(st.none(), _exc_infos),
    )
    def test_renders_what_the_old_chain_rendered(
        self,
        event: dict[str, Any],
        name: str,
        bound: dict[str, Any],
        unbound: list[str],
        extra: dict[str, Any],
        method: str,
        ns: int,
        exc_kind: Any,
    ) -> None:
        """Any event, contextvars, extra keys, level, instant and exc_info: the same line."""
        unbound = [k for k in unbound if k not in bound]
        base = {**event, "event": name}
        if exc_kind is not None:
            base["exc_info"] = _exc_info(exc_kind)
        old = _run_in_context(bound, unbound, lambda: _old_line(extra, method, dict(base), ns))
        new = _run_in_context(bound, unbound, lambda: _new_line(extra, method, dict(base), ns))
        _same_lines(old, new, set(bound))

    def test_a_current_exception_is_rendered_as_before(self) -> None:
        """exc_info=True inside an except block: the traceback being handled, both ways."""
        try:
            raise KeyError("k")
        except KeyError:
            old = _old_line({}, "error", {"event": "x", "exc_info": True}, 10**18)
            new = _new_line({}, "error", {"event": "x", "exc_info": True}, 10**18)
        assert new == old and "KeyError" in json.loads(new)["exception"]

    def test_the_decision_line_is_byte_for_byte_the_old_one(self) -> None:
        """The line Decide writes, with its contextvars bound as Decide binds them."""
        kw = {
            "decision_id": "5f0c3a52-8a43-4b0e-9d7c-2f6a8e1f0b11",
            "outcome": "APPROVE",
            "ruleset_version": "2026.11.1",
            "ruleset_digest": "sha256:" + "ab" * 32,
            "seq": 123456,
            "duration_ms": 1.234,
            "event": "decision",
        }
        bound = {"rpc": "Decide", "item_code": "事项", "window_id": "w-1", "principal": "p"}
        ns = 1_795_000_000_123_456_789
        old = _run_in_context(bound, [], lambda: _old_line({"worker": 2}, "info", dict(kw), ns))
        new = _run_in_context(bound, [], lambda: _new_line({"worker": 2}, "info", dict(kw), ns))
        _same_lines(old, new, set(bound))
        assert json.loads(new)["timestamp"] == "2026-11-18T11:06:40.123456Z"


class TestIsoStamps:
    @given(st.lists(_instants, min_size=1, max_size=5))
    def test_each_instant_as_datetime_isoformat_writes_it(self, instants: list[int]) -> None:
        """Several in a row (the per-second cache kept or replaced): isoformat's text."""
        now = iter(instants)
        stamp = IsoStamps(lambda: next(now))
        for ns in instants:
            moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)
            assert stamp() == moment.isoformat().replace("+00:00", "Z")

    def test_the_real_clock_is_the_one_datetime_now_reads(self) -> None:
        """Without a fixed clock: between two readings of datetime.now."""
        before = dt.datetime.now(tz=dt.UTC)
        stamped = dt.datetime.fromisoformat(IsoStamps()())
        after = dt.datetime.now(tz=dt.UTC)
        assert before <= stamped <= after


class _Lines:
    """A wrapped logger that keeps what each method was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda line: self.calls.append((name, line))


class TestLoggerClass:
    @settings(max_examples=300, deadline=None)
    @given(
        min_level=st.sampled_from([10, 20, 30, 40, 50]),
        method=_methods,
        context=st.dictionaries(st.text(max_size=8), _values, max_size=3),
        kw=st.dictionaries(st.text(max_size=8).filter(lambda k: k != "event"), _values, max_size=4),
        event=st.one_of(st.none(), st.text(max_size=10)),
        extra=st.one_of(st.just({}), st.just({"worker": 3})),
        ns=_instants,
    )
    def test_the_straight_path_logs_what_structlogs_own_path_logged(
        self,
        min_level: int,
        method: str,
        context: dict[str, Any],
        kw: dict[str, Any],
        event: str | None,
        extra: dict[str, Any],
        ns: int,
    ) -> None:
        """Any level, bound context, keywords and event: the same calls, the same lines."""
        render = json_line(extra, clock=lambda: ns)
        fast_lines, slow_lines = _Lines(), _Lines()
        fast = logger_class(min_level, render)(fast_lines, [render], dict(context))
        slow = structlog.make_filtering_bound_logger(min_level)(slow_lines, [render], dict(context))
        try:
            raise OSError("for exception()")
        except OSError:
            getattr(fast, method)(event, **kw)
            getattr(slow, method)(event, **kw)
        assert fast_lines.calls == slow_lines.calls

    def test_interpolation_and_other_chains_take_structlogs_path(self) -> None:
        """Positional arguments are interpolated; capture_logs' chain gets the event."""
        render = json_line({}, clock=lambda: 0)
        lines = _Lines()
        logger_class(20, render)(lines, [render], {}).info("a %s b", "值")
        assert json.loads(lines.calls[0][1])["event"] == "a 值 b"
        with structlog.testing.capture_logs() as captured:
            processors = structlog.get_config()["processors"]
            logger_class(20, render)(_Lines(), processors, {}).warning("e", k=1)
        assert captured == [{"event": "e", "k": 1, "log_level": "warning"}]


def test_this_module_runs_with_the_structlog_it_was_written_for() -> None:
    """The fast contextvar path reads structlog's private table; without it, the fallback."""
    assert isinstance(getattr(structlog.contextvars, "_CONTEXT_VARS", None), dict), sys.version
