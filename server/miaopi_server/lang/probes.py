"""Probes: small derived booleans computed in Python before a case reaches the rules engine.

durable_rules cannot test presence safely (`$nex` can spin forever), its regular-expression
engine crashes or mis-matches on escapes and CJK ranges, it refuses an `$or` inside `$iall` at
random, and a few hundred `$or` branches (one per value of `x in [...]`) crash or hang it. So
presence, emptiness, string tests and membership (`x in S`, `any / all x in S`) are computed
here, stored under `_p.<key>` in the asserted fact, and tested in the engine by equality. A
probe whose subject is missing is itself absent, so it never matches.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

MISSING: Any = object()
Getter = Callable[[str], Any]


def is_hanzi(text: str) -> bool:
    """Non-empty and every character is a CJK unified ideograph (规范汉字 for names)."""
    return bool(text) and all(
        unicodedata.name(ch, "").startswith("CJK UNIFIED IDEOGRAPH") for ch in text
    )


def string_test(text: str, mode: str, words: tuple[str, ...]) -> bool:
    if mode == "contains":
        return any(w in text for w in words)
    if mode == "starts":
        return text.startswith(words)
    return text.endswith(words)


@dataclass(frozen=True)
class Probe:
    """One derived boolean. `quant` set means the test runs over the elements of a list."""

    kind: Literal["present", "empty", "string", "hanzi", "member"]
    path: str
    mode: str = ""
    words: tuple[Any, ...] = ()  # strings for string tests; a membership probe's values
    quant: Literal["", "any", "all"] = ""

    @cached_property
    def _members(self) -> frozenset[Any]:
        """The values of a membership probe as a set, built once (lists may be long)."""
        return frozenset(self.words)

    def compute(self, get: Getter) -> bool | None:
        value = get(self.path)
        if self.kind == "present":
            return value is not MISSING
        if value is MISSING:
            return None
        if self.kind == "empty":
            return len(value) == 0
        test = self._element_test()
        if self.quant == "any":
            return any(test(v) for v in value)
        if self.quant == "all":
            return all(test(v) for v in value)
        return test(value)

    def _element_test(self) -> Callable[[str], bool]:
        if self.kind == "hanzi":
            return is_hanzi
        if self.kind == "member":
            return self._members.__contains__
        mode, words = self.mode, tuple(str(w) for w in self.words)
        return lambda text: string_test(text, mode, words)


class ProbeTable:
    """The probes of one item, deduplicated; keys are stable in order of first use."""

    def __init__(self) -> None:
        self._keys: dict[Probe, str] = {}

    def key(self, probe: Probe) -> str:
        if probe not in self._keys:
            self._keys[probe] = f"p{len(self._keys)}"
        return self._keys[probe]

    def items(self) -> list[tuple[str, Probe]]:
        return [(k, p) for p, k in self._keys.items()]
