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
- Every session id keeps state until deleted and a ruleset holds at most 1,024 live ones:
  each evaluation uses a fresh id and always deletes it, under one lock, so at most one case
  is in flight per engine and memory stays flat.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import durable_rules_engine as _core

from miaopi_server.errors import EngineError

WARMUP_RULE = "__warmup__"
WARMUP_KEY = "_warmup"
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True)
class RulesetHandle:
    """A registered ruleset; `rules` are the rule names it was built from."""

    name: str
    handle: int
    rules: tuple[str, ...]


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
        self._sids = itertools.count()
        self._names = itertools.count()

    def register(self, label: str, conditions: Mapping[str, dict[str, Any]]) -> RulesetHandle:
        """Create a ruleset from {rule name: durable condition}. `label` names it in errors.

        Raises EngineError naming the first rule the engine refuses.
        """
        rules = {name: {"all": [{"m": cond}]} for name, cond in conditions.items()}
        rules[WARMUP_RULE] = {"all": [{"m": {WARMUP_KEY: True}}]}
        name = f"{label}#{next(self._names)}"  # engine names must be unique; reloads re-register
        with self._lock:
            try:
                handle = _core.create_ruleset(name, json.dumps(rules, ensure_ascii=False))
            except Exception as exc:
                raise EngineError(self._blame(label, conditions, exc)) from exc
            ruleset = RulesetHandle(name, handle, tuple(conditions))
            fired = self._run(handle, {WARMUP_KEY: True})
        if fired != [WARMUP_RULE]:
            raise EngineError(f"{label}: warm-up rule did not fire ({fired})")
        return ruleset

    def unregister(self, ruleset: RulesetHandle) -> None:
        with self._lock:
            _core.delete_ruleset(ruleset.handle)

    def evaluate(self, ruleset: RulesetHandle, fact: dict[str, Any]) -> list[str]:
        """Names of the rules whose conditions match `fact`, each once, in firing order."""
        with self._lock:
            return self._run(ruleset.handle, fact)

    def _run(self, handle: int, fact: dict[str, Any]) -> list[str]:
        sid = str(next(self._sids))
        payload = _encode({**fact, "sid": sid})
        fired: dict[str, None] = {}
        try:
            code, state = _core.assert_fact(handle, payload)
            if code == 0:
                result = _core.start_action_for_state(handle, state)
                while result:
                    messages = result[1] if isinstance(result, tuple) else result
                    fired.setdefault(_rule_name(messages), None)
                    result = _core.complete_and_start_action(handle, state)
        except Exception as exc:
            raise EngineError(f"rules engine failed: {exc}") from exc
        finally:
            _core.delete_state(handle, sid)
        return list(fired)

    @staticmethod
    def _blame(label: str, conditions: Mapping[str, dict[str, Any]], exc: Exception) -> str:
        """The engine only returns a numeric code; find the rule it refuses on its own."""
        for rule, cond in conditions.items():
            probe = {rule: {"all": [{"m": cond}]}}
            try:
                h = _core.create_ruleset(f"{label}#blame", json.dumps(probe, ensure_ascii=False))
            except Exception as rule_exc:
                return f"{label}: rules engine refused rule {rule!r}: {rule_exc}"
            _core.delete_ruleset(h)
        return f"{label}: rules engine refused the ruleset: {exc}"
