"""Run an item's lookups for one case, before it is decided: each bound source once by its key,
and the e-license library once for the holder. Only with the applicant's authorisation (授权):
without a consent reference nothing is looked up and the case is decided on its own facts.
A failing source becomes an `unavailable` lookup (its reason, never the key); the item's setting
decides what that means. Nothing is cached beyond this one call.
"""

from __future__ import annotations

from typing import Any

from miaopi_server.decision.sourced import FOUND, NO_RECORD, UNAVAILABLE, Gathered, Lookup
from miaopi_server.rules.model import Item
from miaopi_server.sources.model import Licence, Provider, SourceUnavailable


def _get(facts: Any, path: str) -> Any:
    for part in path.split("."):
        facts = facts.get(part) if isinstance(facts, dict) else None
    return facts


def gather(item: Item, facts: Any, consent: str, provider: Provider | None) -> Gathered | None:
    if not consent or provider is None or not (item.sources or item.e_license_holder):
        return None
    lookups = []
    for b in item.sources:
        key = _get(facts, b.key)
        if not isinstance(key, str) or not key:
            continue  # validation names the missing key
        try:
            rec = provider.fetch(b.source, key, b.deadline_ms / 1000)
        except SourceUnavailable as exc:
            lookups.append(Lookup(b.source, b.key, UNAVAILABLE, reason=exc.reason, key=key))
            continue
        if rec is None:
            lookups.append(Lookup(b.source, b.key, NO_RECORD, key=key))
        else:
            lookups.append(
                Lookup(
                    b.source, b.key, FOUND, rec.record_id, dict(rec.values), rec.fetched_at, key=key
                )
            )
    licences: tuple[Licence, ...] = ()
    status = ""
    holder = _get(facts, item.e_license_holder) if item.e_license_holder else None
    if isinstance(holder, str) and holder:
        try:
            licences, status = provider.licences(holder, 1.0), FOUND
        except SourceUnavailable:
            status = UNAVAILABLE
    fetched = licences[0].fetched_at if licences else ""
    return Gathered(consent, tuple(lookups), licences, status, fetched)
