"""What each recorded decision opens (its casework task), given to the Recorder so that the
task is stored in the decision's own commit."""

from __future__ import annotations

import datetime as dt

from miaopi_server.audit.record import StoredRecord
from miaopi_server.audit.recorder import Decided
from miaopi_server.casework import states as s
from miaopi_server.casework.model import Task
from miaopi_server.casework.opening import kind_of, open_task
from miaopi_server.edge.auth import Authenticator
from miaopi_server.errors import MiaopiError
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

    def _jurisdiction(self, window: dict[str, str]) -> str:
        principal = self._auth.principal(window.get("principal_id", "")) if self._auth else None
        return principal.jurisdiction if principal is not None else ""

    def __call__(self, decided: Decided, window: dict[str, str]) -> Task | None:
        """The task the decision opens; None when the rules closed the case at once (most
        decisions: nothing more is built or stored for them)."""
        d = decided.decision
        if kind_of(d) == s.INSTANT:
            return None
        return open_task(
            d,
            decided.decision_id,
            decided.decided_at,
            self._item(d.item_code, d.digest),
            self._jurisdiction(window),
            window.get("window_id", ""),
        )

    def closed_at_once(self, record: StoredRecord) -> Task:
        """The case of a decision that opened no task: closed by the rules alone."""
        decision = record.decision
        ruleset = decision.get("ruleset", {})
        try:
            department = self._item(ruleset.get("item_code", ""), ruleset.get("digest", ""))
        except MiaopiError:  # the item is no longer served
            department = None
        outcome = str(decision.get("outcome", "")).removeprefix("OUTCOME_")
        return Task(
            decision_id=record.decision_id,
            kind=s.INSTANT,
            state=s.CLOSED,
            item_code=str(ruleset.get("item_code", "")),
            department=department.department if department is not None else "",
            jurisdiction=self._jurisdiction(record.window),
            window_id=record.window.get("window_id", ""),
            opened_at=dt.datetime.fromisoformat(str(decision["decided_at"])),
            promised_days=0,
            statutory_days=0,
            supplement_days=0,
            rules_outcome=outcome,
            rules_verdict=outcome,
        )
