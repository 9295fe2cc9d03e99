"""Turn the audit trail back into replayable case files, from a database copy, a PostgreSQL
trail read directly, or a server.

Each recorded decision becomes one line in the replay format (cases.py): the case exactly as
received, and as `expected` what was decided then (outcome, missing materials, outputs).
Replaying the export against new rule files shows which past decisions they would change.
A decision made on shared data (四免) exports what the sources said as `sourced`, so that the
replay decides on the same data without calling them.

A case that omitted application.date was decided as of the day it arrived; its export carries
that day (the recorded as_of_date) as application.date, so that a replay on another day still
decides as of the original one.

A record here is {"seq": int, "decision": {...}, "case": {"item_code", "facts", "materials"}};
the decision may be the stored body's (OUTCOME_ prefixes) or a client dict (without).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .client import Client


class AuditSourceError(Exception):
    """An audit database cannot be read (missing, not SQLite, unreachable, not an audit
    trail)."""


def _plain(value: Any) -> Any:
    """Integral numbers without a fraction (Struct numbers are doubles): 2.0 -> 2."""
    from miaopi_server.offline import canonical  # loads the engine: only when exporting

    return json.loads(canonical(value))


def _seq(decision: dict[str, Any], fallback: Any) -> int:
    receipt = decision.get("receipt")
    raw = receipt.get("seq", fallback) if isinstance(receipt, dict) else fallback
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


def export_case(record: dict[str, Any]) -> dict[str, Any]:
    """One record -> one replay case (see the module docstring)."""
    decision = record["decision"]
    case = _plain(record.get("case") or {})
    facts = case.get("facts") or {}
    as_of = decision.get("as_of_date", "")
    application = facts.get("application")
    if as_of and (not isinstance(application, dict) or "date" not in application):
        facts["application"] = {
            **(application if isinstance(application, dict) else {}),
            "date": as_of,
        }
    seq = record.get("seq") or _seq(decision, 0)
    sourced = decision.get("sourced")
    return {
        "case_id": decision.get("decision_id", ""),
        "item_code": case.get("item_code") or decision.get("item_code", ""),
        "facts": facts,
        "materials": list(case.get("materials") or []),
        "expected": {
            "outcome": str(decision.get("outcome", "")).removeprefix("OUTCOME_"),
            "missing_materials": [m.get("id", "") for m in decision.get("missing_materials", [])],
            "outputs": _plain(decision.get("outputs") or {}),
        },
        "note": f"seq {seq}, decided {decision.get('decided_at', '')}, as of {as_of}",
    } | ({"sourced": _plain(sourced)} if isinstance(sourced, dict) else {})


def export_cases(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Replay cases for `records`, in the order given."""
    for record in records:
        yield export_case(record)


def records_from_db(path: str | Path, item_code: str = "") -> Iterator[dict[str, Any]]:
    """Every record of an audit database (or a copy of it), oldest first, opened read-only.
    Raises AuditSourceError when the file is not a readable audit trail."""
    path = Path(path)
    if not path.is_file():
        raise AuditSourceError(f"{path}: no such file")
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise AuditSourceError(f"{path}: cannot open: {exc}") from None
    try:
        try:
            columns = {r[1] for r in conn.execute("PRAGMA table_info(records)")}
            # Since schema 4 cases are a table of their own (a purged case has no row) and
            # the trail holds events of its own beside decisions: neither is exported.
            sql = (
                "SELECT r.seq, r.body, r.case_json FROM records r WHERE 1"
                if "case_json" in columns
                else "SELECT r.seq, r.body, c.case_json FROM records r"
                " JOIN cases c ON c.seq = r.seq WHERE r.kind = 'decision'"
            )
            args: tuple[str, ...] = ()
            if item_code:
                sql += " AND r.item_code = ?"
                args = (item_code,)
            rows = conn.execute(sql + " ORDER BY r.seq", args)
            for seq, body, case_json in rows:
                yield {
                    "seq": seq,
                    "decision": json.loads(body)["decision"],
                    "case": json.loads(case_json),
                }
        except sqlite3.Error as exc:
            raise AuditSourceError(f"{path}: not a readable audit trail: {exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditSourceError(f"{path}: a record is not valid JSON: {exc}") from None
    finally:
        conn.close()


def records_from_store(dsn: str, item_code: str = "") -> Iterator[dict[str, Any]]:
    """Every decision of a PostgreSQL trail (`--store`), oldest first, read in one read-only
    snapshot and streamed. Raises AuditSourceError when it cannot be read (the message names
    the database without its password)."""
    from miaopi_server.offline import AuditUnavailable, store_records

    try:
        for seq, body, case_json in store_records(dsn, item_code):
            yield {
                "seq": seq,
                "decision": json.loads(body)["decision"],
                "case": json.loads(case_json),
            }
    except AuditUnavailable as exc:
        raise AuditSourceError(str(exc)) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditSourceError(f"a record is not valid JSON: {exc}") from None


def records_from_server(
    client: Client, item_code: str = "", page_size: int = 200
) -> Iterator[dict[str, Any]]:
    """Every record on a server, oldest first. ListDecisions pages newest first, so the
    whole (filtered) list is fetched before the first record is yielded."""
    fetched = list(client.iter_records(item_code=item_code, page_size=page_size))
    for r in reversed(fetched):
        yield {"seq": _seq(r["decision"], 0), "decision": r["decision"], "case": r["case"]}
