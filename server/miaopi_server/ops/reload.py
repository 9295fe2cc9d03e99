"""The serving rule set: loaded at start-up, hot-reloaded without a restart.

Every set goes live through the gate (ops/gate.py): copied under the state directory, checked
in a separate process, then loaded here from that copy and registered in full (on a worker
thread) before it replaces the old one in a single assignment. If any file has an error, or
the check crashes, hangs or disagrees with the reference semantics, the old set keeps serving
and the errors are kept for the API and the log. Decisions run synchronously on the event loop
between awaits, so each one sees exactly one catalog; the old catalog's engine rulesets are
released only after a grace period.

At start-up a refused set is replaced by the last set that passed the gate from the same
directory (kept under the state directory), loudly: an error in the log and in every
GetRulesetStatus until a reload succeeds. With no such set the server refuses to start.

Triggers: ReloadRulesets (admin RPC), SIGHUP, and the polling file watch (off unless --watch
turns it on: publishing is a deliberate act). Each is the same publication: a set that passes
the gate is recorded (ops/publish.py) before it serves; a set that cannot be recorded does not
go live.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from miaopi_server.decision.catalog import Catalog
from miaopi_server.decision.engine import Engine
from miaopi_server.errors import Diagnostic, RuleFileError
from miaopi_server.ops import staging
from miaopi_server.ops.gate import Admitted, GatePolicy, admit, admit_last_good
from miaopi_server.ops.publish import START, Publisher, versions

if TYPE_CHECKING:  # the relay's type only: its module brings the metrics library
    from miaopi_server.ops.workers import Relay

log = structlog.get_logger("miaopi.reload")
SERVING_LAST_GOOD = "MP195"  # start-up refused the directory and serves the last good set
NOT_RECORDED = "MP372"  # the set passed the gate but its publication could not be recorded


def catalog_digest(catalog: Catalog) -> str:
    lines = sorted(
        f"{code}@{v.item.version}:{v.item.digest}"
        for code, versions in catalog.versions.items()
        for v in versions
    )
    return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()


@dataclass(frozen=True)
class ReloadResult:
    applied: bool
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    diagnostics: list[str] = field(default_factory=list)
    catalog_digest: str = ""
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    set_digest: str = ""  # the published set's archive key (GetPublishedRules), when applied


def snapshot(root: Path) -> tuple[tuple[str, int, int], ...]:
    """What the watcher compares: every file of the set with its mtime and size."""
    out = []
    for p in staging.set_files(root):
        st = p.stat()
        out.append((str(p.relative_to(root)), st.st_mtime_ns, st.st_size))
    return tuple(out)


@dataclass(frozen=True)
class GateSettings:
    """Where staged sets are kept and how the gate checks them."""

    state_dir: Path
    policy: GatePolicy = field(default_factory=GatePolicy)


class CatalogHolder:
    """Owns the catalog that is serving; `current` is what every RPC reads.
    Build one with `open_holder`, which puts the first set through the gate."""

    def __init__(
        self,
        root: Path,
        admitted: Admitted,
        gate: GateSettings,
        grace_seconds: float = 5.0,
    ):
        self.root = root
        catalog = admitted.catalog
        self._catalog = catalog
        self.staged = admitted.staged  # the serving set's copy (and its digest)
        # Records every set before it goes live; set once the audit store is open (app.py).
        self.publisher: Publisher | None = None
        self._gate = gate
        self._grace = grace_seconds
        # Set while start-up's fallback serves: repeated with every failed reload's diagnostics.
        self.fallback_notice: str | None = None
        self._lock = asyncio.Lock()
        self.loaded_at = dt.datetime.now(dt.UTC)
        self.last = ReloadResult(
            True, catalog_digest=catalog_digest(catalog), set_digest=admitted.staged.digest
        )
        # What the files looked like when the serving set was read (the watcher compares).
        self.files = snapshot(root)
        self._retired: list[Catalog] = []
        self.on_reload: Callable[[bool], None] | None = None  # told each reload: applied?

    def current(self) -> Catalog:
        return self._catalog

    @property
    def engine(self) -> Engine:
        return self._catalog.engine

    async def record_start(self, publisher: Publisher) -> None:
        """Record the set that started serving (unless it is archived already), then record
        every later one with `publisher`. Raises AuditUnavailable when it cannot be recorded."""
        await asyncio.to_thread(publisher.record, self.staged, self._catalog, START, "")
        self.publisher = publisher

    async def reload_own(
        self, trigger: str, by: str = "", relay: Relay | None = None
    ) -> ReloadResult:
        """`reload` asked of this process itself (ReloadRulesets, the watch); with `relay`
        (`--workers`), once it applied, an act every other worker carries out too."""
        act = relay.new_act() if relay is not None else ""
        result = await self.reload(trigger, by, act)
        if result.applied and relay is not None:
            relay(act)
        return result

    async def reload(self, trigger: str, by: str = "", act: str = "") -> ReloadResult:
        """Publish the rules directory as it is now: through the gate, on the record, live.
        `trigger` says what asked ("rpc", "SIGHUP", "watch"), `by` who (a principal id),
        `act` which reload of all `--workers` processes this is ("": this process's own)."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            old = self._catalog
            files = await asyncio.to_thread(snapshot, self.root)
            try:
                admitted = await loop.run_in_executor(
                    None, admit, self.root, self._gate.state_dir, self._gate.policy, old.engine
                )
            except RuleFileError as exc:
                self.files = files  # do not retry the same broken files on every poll
                diags = [str(d) for d in exc.diagnostics]
                for d in diags:
                    log.error("rules.reload_refused", trigger=trigger, diagnostic=d)
                return self._refused(diags, old)
            except Exception as exc:  # e.g. the directory vanished: keep serving the old set
                log.exception("rules.reload_failed", trigger=trigger)
                return self._refused([f"{self.root}: {exc}"], old)
            new = admitted.catalog
            if self.publisher is not None:
                try:
                    await asyncio.to_thread(
                        self.publisher.record, admitted.staged, new, trigger, by, act
                    )
                except Exception as exc:  # AuditUnavailable: no rules serve off the record
                    log.error("rules.publish_not_recorded", trigger=trigger, error=str(exc))
                    new.close()
                    notice = Diagnostic(
                        str(self.root),
                        1,
                        1,
                        NOT_RECORDED,
                        f"规则集已通过检查，但发布无法记入审计记录，未上线：{exc}",
                    )
                    return self._refused([str(notice)], old)
            self.fallback_notice = None
            self.staged = admitted.staged
            before, after = versions(old), versions(new)
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
                set_digest=admitted.staged.digest,
            )
            self.last = result
            if self.on_reload is not None:
                self.on_reload(True)
            log.info(
                "rules.reloaded",
                trigger=trigger,
                added=result.added,
                removed=result.removed,
                changed=result.changed,
                catalog_digest=result.catalog_digest,
                set_digest=result.set_digest,
            )
            return result

    def _refused(self, diagnostics: list[str], serving: Catalog) -> ReloadResult:
        if self.fallback_notice is not None:
            diagnostics = [*diagnostics, self.fallback_notice]
        self.last = ReloadResult(
            False, diagnostics=diagnostics, catalog_digest=catalog_digest(serving)
        )
        if self.on_reload is not None:
            self.on_reload(False)
        return self.last

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


async def open_holder(root: Path, gate: GateSettings, grace_seconds: float) -> CatalogHolder:
    """The first set through the gate; if `root` is refused, the last good set from `root`
    (see the module docstring). Raises RuleFileError when neither can serve."""
    files = await asyncio.to_thread(snapshot, root)  # before staging: a later edit reloads
    try:
        admitted = await asyncio.to_thread(admit, root, gate.state_dir, gate.policy)
        holder = CatalogHolder(root, admitted, gate, grace_seconds)
        holder.files = files
        return holder
    except RuleFileError as refused:
        fallback = await asyncio.to_thread(admit_last_good, root, gate.state_dir, gate.policy)
        if fallback is None:
            raise
        admitted, previous = fallback
        diags = [str(d) for d in refused.diagnostics]
        for d in diags:
            log.error("rules.start_refused", diagnostic=d)
        notice = Diagnostic(
            str(root),
            1,
            1,
            SERVING_LAST_GOOD,
            f"规则目录未通过检查，正在使用上次通过检查的规则集（{previous.saved_at} 上线，"
            f"{previous.staged.digest}）；修正规则文件后重新加载即恢复",
        )
        log.error(
            "rules.serving_last_good",
            rulesets=str(root),
            saved_at=previous.saved_at,
            set_digest=previous.staged.digest,
            note="the rules directory was refused at start-up; serving the last good set",
        )
        holder = CatalogHolder(root, admitted, gate, grace_seconds)
        holder.files = files  # the refused files: the watch waits for them to change
        holder.fallback_notice = str(notice)
        holder.last = ReloadResult(
            False,
            diagnostics=[*diags, str(notice)],
            catalog_digest=catalog_digest(holder.current()),
        )
        return holder


async def watch(
    holder: CatalogHolder,
    interval: float,
    stopped: Callable[[], bool] = lambda: False,
    relay: Relay | None = None,
) -> None:
    """Poll the rules directory; reload once a change has settled for one interval. With
    `relay` (the one watching worker of `--workers`), a reload is an act the other workers
    carry out too."""
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
        await holder.reload_own("watch", relay=relay)
