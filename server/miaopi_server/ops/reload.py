"""Hot reload of the rules directory without a restart.

The new set is loaded, compiled and registered in full (on a worker thread) before it replaces
the old one in a single assignment; if any file has an error, the old set keeps serving and the
errors are kept for the API and the log. Decisions run synchronously on the event loop between
awaits, so each one sees exactly one catalog; the old catalog's engine rulesets are released
only after a grace period.

Triggers: ReloadRulesets (admin RPC), SIGHUP, and an optional polling file watch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from miaopi_server.decision.catalog import Catalog, load_catalog
from miaopi_server.decision.engine import Engine
from miaopi_server.errors import RuleFileError

log = structlog.get_logger("miaopi.reload")


def catalog_digest(catalog: Catalog) -> str:
    lines = sorted(
        f"{code}@{v.item.version}:{v.item.digest}"
        for code, versions in catalog.versions.items()
        for v in versions
    )
    return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _labels(catalog: Catalog) -> dict[str, str]:
    return {
        f"{code}@{v.item.version}": v.item.digest
        for code, versions in catalog.versions.items()
        for v in versions
    }


@dataclass(frozen=True)
class ReloadResult:
    applied: bool
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    diagnostics: list[str] = field(default_factory=list)
    catalog_digest: str = ""
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def snapshot(root: Path) -> tuple[tuple[str, int, int], ...]:
    """What the watcher compares: every rule and list file with its mtime and size."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.suffix in (".yaml", ".yml") and p.is_file():
            st = p.stat()
            out.append((str(p.relative_to(root)), st.st_mtime_ns, st.st_size))
    return tuple(out)


class CatalogHolder:
    """Owns the catalog that is serving; `current` is what every RPC reads."""

    def __init__(self, root: Path, catalog: Catalog, grace_seconds: float = 5.0):
        self.root = root
        self._catalog = catalog
        self._grace = grace_seconds
        self._lock = asyncio.Lock()
        self.loaded_at = dt.datetime.now(dt.UTC)
        self.last = ReloadResult(True, catalog_digest=catalog_digest(catalog))
        # What the files looked like when the serving set was read (the watcher compares).
        self.files = snapshot(root)
        self._retired: list[Catalog] = []

    def current(self) -> Catalog:
        return self._catalog

    @property
    def engine(self) -> Engine:
        return self._catalog.engine

    async def reload(self, trigger: str) -> ReloadResult:
        async with self._lock:
            loop = asyncio.get_running_loop()
            old = self._catalog
            files = await asyncio.to_thread(snapshot, self.root)
            try:
                new = await loop.run_in_executor(None, load_catalog, self.root, old.engine)
            except RuleFileError as exc:
                self.files = files  # do not retry the same broken files on every poll
                diags = [str(d) for d in exc.diagnostics]
                for d in diags:
                    log.error("rules.reload_refused", trigger=trigger, diagnostic=d)
                self.last = ReloadResult(
                    False, diagnostics=diags, catalog_digest=catalog_digest(old)
                )
                return self.last
            except Exception as exc:  # e.g. the directory vanished: keep serving the old set
                log.exception("rules.reload_failed", trigger=trigger)
                self.last = ReloadResult(
                    False, diagnostics=[f"{self.root}: {exc}"], catalog_digest=catalog_digest(old)
                )
                return self.last
            before, after = _labels(old), _labels(new)
            self._catalog = new  # the swap: one assignment on the event loop
            self.files = files
            self.loaded_at = dt.datetime.now(dt.UTC)
            self._retire(old)
            result = ReloadResult(
                True,
                added=sorted(after.keys() - before.keys()),
                removed=sorted(before.keys() - after.keys()),
                changed=sorted(k for k in before.keys() & after.keys() if before[k] != after[k]),
                diagnostics=[str(d) for d in new.warnings],
                catalog_digest=catalog_digest(new),
            )
            self.last = result
            log.info(
                "rules.reloaded",
                trigger=trigger,
                added=result.added,
                removed=result.removed,
                changed=result.changed,
                catalog_digest=result.catalog_digest,
            )
            return result

    def _retire(self, old: Catalog) -> None:
        """Release the old engine rulesets after a grace period (nothing can still use them:
        decisions do not span an await, but a slow caller holding a reference might)."""
        self._retired.append(old)
        loop = asyncio.get_running_loop()
        loop.call_later(self._grace, self._close_retired, old)

    def _close_retired(self, old: Catalog) -> None:
        if old in self._retired:
            self._retired.remove(old)
            old.close()

    def close(self) -> None:
        for old in self._retired:
            old.close()
        self._retired.clear()
        self._catalog.close()


async def watch(
    holder: CatalogHolder, interval: float, stopped: Callable[[], bool] = lambda: False
) -> None:
    """Poll the rules directory; reload once a change has settled for one interval."""
    pending: tuple[tuple[str, int, int], ...] | None = None
    while not stopped():
        await asyncio.sleep(interval)
        try:
            now = await asyncio.to_thread(snapshot, holder.root)
        except OSError:
            continue
        if now == holder.files:
            pending = None
            continue
        if now != pending:  # still changing (an editor writing): wait one more interval
            pending = now
            continue
        pending = None
        await holder.reload("watch")
