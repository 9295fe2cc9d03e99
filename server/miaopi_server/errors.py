"""The server side's exceptions, one tree under :class:`MiaopiError`.

    MiaopiError
    ├── RuleFileError        rule files that do not load (carries every Diagnostic)
    ├── CaseInvalid          a malformed case (carries every FieldViolation) -> INVALID_ARGUMENT
    ├── ItemNotFound         an unknown item code                          -> NOT_FOUND
    ├── DecisionNotFound     an unknown decision id                        -> NOT_FOUND
    ├── RulesetNotFound      no published rule set has the digest asked for -> NOT_FOUND
    ├── RequestConflict      a request_id reused for a different case      -> ALREADY_EXISTS
    ├── AuditUnavailable     the audit trail cannot be made durable        -> UNAVAILABLE
    │   ├── AuditSchemaTooNew  the audit database is newer than this code (refused at start)
    │   └── AuditTrailDiverged the trail is behind or forked from its signed heads (refused)
    └── EngineError          the rules engine refused or failed             -> INTERNAL

`edge/status.py` is the one place that maps them to gRPC codes.
"""

from __future__ import annotations

from dataclasses import dataclass


class MiaopiError(Exception):
    """Base class of every error the server raises on purpose."""


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in a rule file, located as file:line:column (1-based)."""

    file: str
    line: int
    column: int
    code: str
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity} {self.code}: {self.message}"


class RuleFileError(MiaopiError):
    """Rule files failed to load; `diagnostics` lists every problem found, sorted."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a case: `field` is a dotted path such as "facts.applicant.id_number"."""

    field: str
    description: str


class CaseInvalid(MiaopiError):
    """The case (or, `subject` says, another request) is malformed; `violations` names every
    bad field at once."""

    def __init__(self, violations: list[FieldViolation], subject: str = "申请数据"):
        self.violations = violations
        self.subject = subject
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


class ItemNotFound(MiaopiError):
    """No rule file decides this item code."""

    def __init__(self, item_code: str):
        self.item_code = item_code
        shown = item_code if len(item_code) <= 64 else item_code[:64] + "…"
        super().__init__(f"未知事项编码 {shown!r}")


class EngineError(MiaopiError):
    """The rules engine refused a ruleset or failed while evaluating."""


class DecisionNotFound(MiaopiError):
    def __init__(self, decision_id: str):
        self.decision_id = decision_id
        super().__init__(f"未找到决定 {decision_id!r}")


class RulesetNotFound(MiaopiError):
    """No published rule set has the digest asked for (GetPublishedRules)."""


class RequestConflict(MiaopiError):
    """The request_id was already used for a different case."""

    def __init__(self, request_id: str, decision_id: str):
        self.request_id = request_id
        self.decision_id = decision_id
        super().__init__(f"request_id {request_id!r} 已用于另一申请（决定 {decision_id}）")


class AuditUnavailable(MiaopiError):
    """The decision could not be recorded durably, so it must not be given (fail closed)."""


class AuditSchemaTooNew(AuditUnavailable):
    """The audit database has a schema version this code does not know (a newer server
    migrated it); writing to it could break that server's records, so it is not opened."""

    def __init__(self, database: str, found: int, known: int):
        self.database = database
        self.found = found
        self.known = known
        super().__init__(
            f"audit database {database} is at schema version {found}, newer than this "
            f"server knows (version {known}): run the newer miaopi-server it was migrated by"
        )


class AuditTrailDiverged(AuditUnavailable):
    """The trail in the database is behind, or forked from, a signed tree head this node
    issued (the witness file, the database's own heads): records were removed or replaced.
    The node refuses to serve until an administrator re-anchors it (docs/AUDIT.md)."""
