"""miaopi's own server for the audit-cost benchmark: `miaopi_server.app.main` with the same
flags as `python -m miaopi_server.app`, plus two bench-only switches.

    python -m tests.bench.bench_server --stats-file S [--no-record] -- <miaopi-server flags>

--stats-file S  on shutdown, write the audit store's counters (batches = group commits,
                records_written) and the number of decisions answered, as JSON.
--no-record     "audit off": the servicer's recorder is replaced by one that returns the
                decision without recording it. Everything else is the product's path:
                authentication, authorisation, Struct -> dict, catalog.decide (validation,
                derivation, engine, assembly), convert.decision_message, the `decision` log line,
                response serialisation. What is skipped: the case digest, the decision's
                record JSON, hash chaining, the Ed25519 seal, the SQLite insert and the
                group commit (fsync); the receipt is empty. The product has no such switch on
                purpose (a decision is never returned unrecorded); this exists only here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from miaopi_server import app
from miaopi_server.audit.record import StoredRecord
from miaopi_server.audit.recorder import Decided, Recorded
from miaopi_server.audit.sqlite import SQLiteAuditStore
from miaopi_server.edge.service import ApprovalService

ANSWERED = {"decisions": 0}


# Stands in for the record the product would have written: an empty receipt.
NO_RECORD = StoredRecord(0, "", "", "", "", "", {}, "", {}, "", "", b"")


class UnrecordedRecorder:
    """Returns the decision without recording it (bench only: the product cannot do this)."""

    async def decide(
        self,
        request_id: str,
        case: dict[str, Any],
        window: dict[str, str],
        make_decision: Callable[[], Decided | Awaitable[Decided]],
    ) -> Recorded:
        made = make_decision()  # a coroutine when the service looks up shared data first
        decided = made if isinstance(made, Decided) else await made
        ANSWERED["decisions"] += 1
        return Recorded(NO_RECORD, decided)


class UnrecordedService(ApprovalService):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recorder = UnrecordedRecorder()  # type: ignore[assignment]


def main() -> int:
    argv = sys.argv[1:]
    if "--" in argv:
        ours, theirs = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    else:
        ours, theirs = [], argv
    stats_file = Path(ours[ours.index("--stats-file") + 1]) if "--stats-file" in ours else None
    no_record = "--no-record" in ours

    class CountingStore(SQLiteAuditStore):
        def close(self) -> None:
            super().close()
            if stats_file is not None:
                stats_file.write_text(
                    json.dumps(
                        {
                            "batches": self.batches,
                            "records_written": self.records_written,
                            "unrecorded_decisions": ANSWERED["decisions"],
                        }
                    )
                )

    app.SQLiteAuditStore = CountingStore  # type: ignore[misc]
    if no_record:
        app.ApprovalService = UnrecordedService  # type: ignore[misc]
    return app.main(theirs)


if __name__ == "__main__":
    sys.exit(main())
