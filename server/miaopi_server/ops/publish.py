"""Publishing a rule set: what goes on the record when a set goes live.

Every set that passes the gate (ops/gate.py: compile check and the set's own rule tests) is
recorded before it serves: a "ruleset_published" event in the audit chain (its set digest,
its item versions, what triggered it and who) with the set's full text archived in the same
commit, content-addressed by that digest (once: the same text published again is still on the
record, but stored once). If the record cannot be written the set does not go live. At
start-up a set already archived is not recorded again: a restart publishes nothing, and of
several processes (`--workers`) or nodes (one PostgreSQL trail) starting with the same set one
records it. The store decides that in its write transaction (store.publish_new). Likewise one
reload carried out by every `--workers` process (a SIGHUP to the supervisor, a ReloadRulesets
or a file change one worker acted on first) is one act with an id of its own
(ops/workers.py): it is recorded once, as the event of that act (store.publish_act).
"""

from __future__ import annotations

from dataclasses import dataclass

from miaopi_server.audit.record import StoredRecord
from miaopi_server.audit.store import AuditStore, PublishedSet
from miaopi_server.decision.catalog import Catalog
from miaopi_server.ops import staging

START = "start"
RPC = "rpc"  # ReloadRulesets: the worker that served it records it, by its principal


def versions(catalog: Catalog) -> dict[str, str]:
    """Every item version of a catalog, "CODE@VERSION" -> digest (RulesetRef.digest)."""
    return {
        f"{code}@{v.item.version}": v.item.digest
        for code, versions in catalog.versions.items()
        for v in versions
    }


@dataclass(frozen=True)
class Publisher:
    """Records the sets going live in `store`."""

    store: AuditStore

    def record(
        self, staged: staging.Staged, catalog: Catalog, trigger: str, by: str, act: str = ""
    ) -> StoredRecord | None:
        """Archive and record `staged` (loaded as `catalog`), published by `trigger` ("rpc",
        "SIGHUP", "watch", "start") on behalf of `by` (a principal id, or "" for the server
        itself), as part of `act` (one reload all `--workers` processes carry out; "" for a
        process on its own). None when nothing new was recorded: at start-up a set already
        archived, and an act another worker recorded already.
        Raises AuditUnavailable when it cannot be recorded, OSError when the copy is gone."""
        published = PublishedSet(staged.digest, staged.texts(), versions(catalog))
        details = {"trigger": trigger, "by": by}
        if trigger == START:
            return self.store.publish_new(published, details)
        if act:
            return self.store.publish_act(published, details, act)
        return self.store.publish(published, details)
