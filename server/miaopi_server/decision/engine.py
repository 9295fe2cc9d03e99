"""The one module that talks to durable_rules.

It drives the engine's C core (`durable_rules_engine`, shipped inside durable-rules) directly:
assert a case as a fact, collect the names of the rules whose conditions matched, delete the
case's state. The Python `durable.engine.Host` layer adds nothing this product uses (event
queues, timers, per-action closures) and starts two background threads that were seen to
crash the process under concurrent use, so it is bypassed.

Engine traps handled here (measured; see docs/ENGINE.md):
- A rule whose condition is an `$or` fires once per matching branch: names are deduplicated,
  so every matching rule is reported exactly once.
- Deleting a case's state segfaults on a ruleset in which no action has ever fired: each
  ruleset carries a warm-up rule that is fired once when it is registered.
- A new session id costs the engine a fresh state node (allocated and zeroed per rule: over
  half of an evaluation, measured) and a ruleset holds at most 1,024 live ones: every
  evaluation reuses one session per ruleset and retracts its fact afterwards, under one lock,
  so at most one case is in flight per engine. Only the LIVE_SESSIONS most recently used
  rulesets keep their session, so memory stays bounded however many items are loaded. Any
  surprise (an error, a fact the state already held) deletes the session, and the next
  evaluation starts afresh.
- Fixed-size tables (64 pending matches per fact, 512 children per test, 255 rules per test,
  254 properties per fact): the rules are registered as several engine rulesets ("parts",
  rules/engine_shape.py), each small enough that no table can fill; a fact is asserted into
  each part with only the paths that part reads, and the fired names are merged (a split
  rule's `name#k` reports as `name`).
- Numbers: the engine's JSON reader takes an exponent only after a decimal point (`1e-05` is
  error 204, `1.0e-05` reads), so exponents get a `.0` mantissa (`_engine_json`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import durable_rules_engine as _core
import orjson

from miaopi_server.errors import EngineError
from miaopi_server.rules.engine_shape import PART_SEPARATOR, partition, reads, rule_of

WARMUP_RULE = "__warmup__"
WARMUP_KEY = "_warmup"
SESSION = "case"  # the one session every evaluation of a ruleset reuses
# Every case is asserted with this id: the engine then neither hashes the whole fact to make
# one, and a retraction names the fact by (sid, id) alone (the core reads nothing else of it),
# so the fact's JSON is not parsed a second time.
FACT_ID = "c"
_RETRACT = orjson.dumps({"sid": SESSION, "id": FACT_ID}).decode()
# Rulesets whose session is kept between evaluations (the most recently used): a held session
# costs ~250 KB of engine memory (1,000 items each holding one: +250 MB, measured), so an idle
# ruleset's is deleted and recreated on its next case.
LIVE_SESSIONS = 64
_FIRED, _NONE_FIRED, _ALREADY_HELD = 0, 1, 2  # assert_fact result codes (rules.h)
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# A JSON string (left alone), or a number with an exponent (Python writes a lower-case e).
_EXPONENT = re.compile(r'("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?)(e[-+]?\d+)')


def _mantissa(m: re.Match[str]) -> str:
    if m.group(1) or "." in m.group(2):
        return m.group(0)
    return f"{m.group(2)}.0{m.group(3)}"


# orjson leaves what it would write differently from json (dates, dataclasses, subclasses:
# json refuses them) to json, as it does integers beyond 64 bits and keys that are not text.
_ORJSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_ORJSON |= orjson.OPT_PASSTHROUGH_SUBCLASS


def _engine_json(value: Any) -> str:
    """JSON the engine reads as meant: `1e-05` (Python's repr of 0.00001) becomes `1.0e-05`.
    Only a payload with an exponent sign in it is rescanned (cheap check on the hot path).
    Written by orjson (a case's fact in a fifth of json's time), else by json."""
    try:
        text = orjson.dumps(value, option=_ORJSON).decode()
    except TypeError:
        text = _json(value)
    if "e-" in text or "e+" in text:
        text = _EXPONENT.sub(_mantissa, text)
    return text


Layout = tuple[tuple[tuple[str, ...], str], ...]  # (parent keys, leaf key) per dotted path


@dataclass(frozen=True)
class _Part:
    """One engine ruleset of a registered rule set; `layout` None: assert the whole fact."""

    name: str
    handle: int
    layout: Layout | None


@dataclass(frozen=True)
class RulesetHandle:
    """A registered rule set (one or more engine rulesets); `rules` are its rule names."""

    name: str
    parts: tuple[_Part, ...]
    rules: tuple[str, ...]


def _layout(paths: Sequence[str]) -> Layout:
    return tuple((tuple(p.split(".")[:-1]), p.rsplit(".", 1)[-1]) for p in dict.fromkeys(paths))


def _project(fact: dict[str, Any], layout: Layout) -> dict[str, Any]:
    """The part of a nested fact at the given paths (absent paths stay absent)."""
    out: dict[str, Any] = {}
    for parents, leaf in layout:
        src: Any = fact
        for p in parents:
            src = src.get(p) if isinstance(src, dict) else None
        if not isinstance(src, dict) or leaf not in src:
            continue
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = src[leaf]
    return out


def _rule_name(messages: str) -> str:
    """The fired rule's name from an action message `{"<name>":{...matched facts...}}`.

    Names are ASCII identifiers chosen by compile.py (no quotes or escapes), so slicing is
    exact and avoids decoding the whole matched fact for every firing."""
    end = messages.find('"', 2)
    if messages.startswith('{"') and end > 2:
        return messages[2:end]
    first: str = next(iter(json.loads(messages)))
    return first


class Engine:
    """Registers compiled rulesets and evaluates facts against them. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names = itertools.count()
        self._live: OrderedDict[int, None] = OrderedDict()  # handles holding a session

    def register(self, label: str, conditions: Mapping[str, dict[str, Any]]) -> RulesetHandle:
        """Create a rule set from {rule name: durable condition}, as one engine ruleset per part
        (rules/engine_shape.py). `label` names it in errors.

        Raises EngineError naming the first rule the engine refuses.
        """
        groups = partition(conditions)
        name = f"{label}#{next(self._names)}"  # engine names must be unique; reloads re-register
        parts: list[_Part] = []
        try:
            for i, group in enumerate(groups or [[]]):
                sub = {rule: conditions[rule] for rule in group}
                layout = None
                if len(groups) > 1:
                    layout = _layout([p for c in sub.values() for p in reads(c)])
                parts.append(_Part(f"{name}/{i}", self._create(f"{name}/{i}", label, sub), layout))
        except Exception:
            for part in parts:
                _core.delete_ruleset(part.handle)
            raise
        return RulesetHandle(name, tuple(parts), tuple(conditions))

    def _create(self, name: str, label: str, conditions: Mapping[str, dict[str, Any]]) -> int:
        rules = {rule: {"all": [{"m": cond}]} for rule, cond in conditions.items()}
        rules[WARMUP_RULE] = {"all": [{"m": {WARMUP_KEY: True}}]}
        with self._lock:
            try:
                handle: int = _core.create_ruleset(name, _engine_json(rules))
            except Exception as exc:
                raise EngineError(self._blame(label, conditions, exc)) from exc
            fired = list(self._run(handle, {WARMUP_KEY: True}))
            self._forget(handle)  # a ruleset holds no session until its first case
        if fired != [WARMUP_RULE]:
            _core.delete_ruleset(handle)
            raise EngineError(f"{label}: warm-up rule did not fire ({fired})")
        return handle

    def unregister(self, ruleset: RulesetHandle) -> None:
        with self._lock:
            for part in ruleset.parts:
                self._live.pop(part.handle, None)
                _core.delete_ruleset(part.handle)

    def evaluate(self, ruleset: RulesetHandle, fact: dict[str, Any]) -> list[str]:
        """Names of the rules whose conditions match `fact`, each once, in firing order (a
        rule split into `name#k` engine rules is reported once, as `name`)."""
        parts = ruleset.parts
        with self._lock:
            if len(parts) == 1:  # one engine ruleset, asserted the whole fact (no layout)
                return list(self._run(parts[0].handle, fact))
            fired: dict[str, None] = {}
            for part in parts:
                sub = fact if part.layout is None else _project(fact, part.layout)
                fired.update(self._run(part.handle, sub))
        return list(fired)

    def _run(self, handle: int, fact: dict[str, Any]) -> dict[str, None]:
        """The rules that fired (split rules by their own name), in firing order."""
        payload = _engine_json({**fact, "sid": SESSION, "id": FACT_ID})
        fired: dict[str, None] = {}
        try:
            code, state = _core.assert_fact(handle, payload)
            if code == _ALREADY_HELD:  # a fact left behind: never decide against stale state
                _core.delete_state(handle, SESSION)
                code, state = _core.assert_fact(handle, payload)
            if code == _FIRED:
                # The first firing comes with the session's state; each one is the rule's
                # name and the matched fact, read one call at a time (the binding has no other way).
                result = _core.start_action_for_state(handle, state)
                while result:
                    name = _rule_name(result[1] if result.__class__ is tuple else result)
                    fired[rule_of(name) if PART_SEPARATOR in name else name] = None
                    result = _core.complete_and_start_action(handle, state)
            elif code != _NONE_FIRED:
                raise EngineError(f"rules engine: unexpected result {code} asserting a case")
            _core.retract_fact(handle, _RETRACT)
        except Exception as exc:
            self._forget(handle)
            if isinstance(exc, EngineError):
                raise
            raise EngineError(f"rules engine failed: {exc}") from exc
        live = self._live
        if handle in live:
            live.move_to_end(handle)
        else:
            self._keep(handle)
        return fired

    def _keep(self, handle: int) -> None:
        """Keep this ruleset's session for its next case; drop the longest unused one's."""
        live = self._live
        if handle in live:
            live.move_to_end(handle)
            return
        live[handle] = None
        if len(live) > LIVE_SESSIONS:
            self._forget(next(iter(live)))

    def _forget(self, handle: int) -> None:
        """Delete the ruleset's session, whatever it holds (the next assert recreates it)."""
        self._live.pop(handle, None)
        with contextlib.suppress(Exception):  # already gone: nothing left to forget
            _core.delete_state(handle, SESSION)

    @staticmethod
    def _blame(label: str, conditions: Mapping[str, dict[str, Any]], exc: Exception) -> str:
        """The engine only returns a numeric code; find the rule it refuses on its own."""
        for rule, cond in conditions.items():
            probe = {rule: {"all": [{"m": cond}]}}
            try:
                h = _core.create_ruleset(f"{label}#blame", _engine_json(probe))
            except Exception as rule_exc:
                return f"{label}: rules engine refused rule {rule!r}: {rule_exc}"
            _core.delete_ruleset(h)
        return f"{label}: rules engine refused the ruleset: {exc}"
