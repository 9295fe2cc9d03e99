"""What each recorded decision opens (its casework task), given to the Recorder so that the
task is stored in the decision's own commit."""

from __future__ import annotations

from miaopi_server.audit.recorder import Decided
from miaopi_server.casework.model import Task
from miaopi_server.casework.opening import open_task
from miaopi_server.edge.auth import Authenticator
from miaopi_server.ops.reload import CatalogHolder
from miaopi_server.rules.model import Item


class CaseOpener:
    """Recorder's opener: the task a decision opens, from the rule-file version that decided
    it and the deciding window's jurisdiction (its principal's grant)."""

    def __init__(self, holder: CatalogHolder, authenticator: Authenticator | None):
        self._holder = holder
        self._auth = authenticator

    def _item(self, code: str, digest: str) -> Item:
        versions = self._holder.current().versions_of(code)
        return next((v.item for v in versions if v.item.digest == digest), versions[-1].item)

    def __call__(self, decided: Decided, window: dict[str, str]) -> Task:
        d = decided.decision
        principal = self._auth.principal(window["principal_id"]) if self._auth else None
        return open_task(
            d,
            decided.decision_id,
            decided.decided_at,
            self._item(d.item_code, d.digest),
            principal.jurisdiction if principal is not None else "",
            window.get("window_id", ""),
        )
