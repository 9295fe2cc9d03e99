"""What a source returns: a record found for a key, or a licence of the e-license library, and
the provider interface every connector implements."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

from miaopi_server.errors import MiaopiError


@dataclass(frozen=True)
class Record:
    """One record a source holds for a key. `values` are keyed by the catalogue's field names;
    `fetched_at` is an RFC 3339 UTC time stamp of the lookup."""

    source: str
    record_id: str
    values: dict[str, Any]
    fetched_at: str


@dataclass(frozen=True)
class Licence:
    """One e-license (电子证照) of the library."""

    licence_type: str
    holder_id: str
    number: str
    valid_from: dt.date
    valid_until: dt.date | None  # None: no expiry
    revoked: bool = False
    fetched_at: str = field(default="", compare=False)

    def valid_on(self, day: dt.date) -> bool:
        """Valid on `day`: issued, not expired (the last day still counts), not revoked."""
        if self.revoked or day < self.valid_from:
            return False
        return self.valid_until is None or day <= self.valid_until


class SourceUnavailable(MiaopiError):
    """A source did not answer in time or answered with something unusable. The message names
    the source and what went wrong, never the key or the record looked up."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class Provider(Protocol):
    """A connector to shared data. Both calls raise SourceUnavailable rather than block past
    `deadline` seconds or return a malformed answer."""

    def fetch(self, source: str, key: str, deadline: float) -> Record | None:
        """The record `source` holds for `key`, or None when it holds none."""
        ...

    def licences(self, holder_id: str, deadline: float) -> tuple[Licence, ...]:
        """Every licence the e-license library holds for `holder_id` (valid or not)."""
        ...
