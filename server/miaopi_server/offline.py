"""The server's engine for tools that work without a server: the `miaopi` CLI's offline
commands (replay, rules lint/test/explain/diff), the audit verifiers (a SQLite file, or a
PostgreSQL trail read directly) and the decision notice (render, and read a notice PDF back).

This is the one module the client package imports from miaopi_server; everything else in the
server is private to it. Each name is imported when first used (PEP 562), so checking a
receipt does not load the rules engine, nor deciding the JSON Schema validator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what each name is, for type checkers; at run time see _HOME
    from miaopi_server.audit.canonical import canonical
    from miaopi_server.audit.decision_json import decision_json, json_value, material_json
    from miaopi_server.audit.merkle import leaf_hash, root_from_inclusion, roots_from_consistency
    from miaopi_server.audit.postgres.readonly import (
        store_consistency,
        store_records,
        verify_store,
    )
    from miaopi_server.audit.record import hash_body
    from miaopi_server.audit.seal import key_id_of, public_key_from_pem, verify_seal
    from miaopi_server.audit.sqlite_verify import database_consistency, verify_database
    from miaopi_server.audit.treehead import TreeHead
    from miaopi_server.audit.witness import read_witness, witness_path
    from miaopi_server.clock import shanghai_today
    from miaopi_server.decision.catalog import Catalog, load_catalog
    from miaopi_server.decision.decide import Decision
    from miaopi_server.decision.explain import explain
    from miaopi_server.decision.sourced import Gathered
    from miaopi_server.edge.convert import decision_message, facts_from_struct
    from miaopi_server.errors import AuditUnavailable, CaseInvalid, ItemNotFound, RuleFileError
    from miaopi_server.notice.attachment import (
        NoticeFileError,
        is_pdf,
        notice_attachment,
        printed_mismatch,
        sealed_summary,
    )
    from miaopi_server.notice.content import NoticeInputError
    from miaopi_server.notice.html import render_notice_html
    from miaopi_server.notice.pdf import render_notice_pdf
    from miaopi_server.ops.lookups import gather
    from miaopi_server.rules.lint import lint
    from miaopi_server.sources.embedded import EmbeddedRegistry, RegistryInvalid
    from miaopi_server.sources.model import SourceUnavailable

# Each public name and the module it comes from.
_HOME = {
    "AuditUnavailable": "miaopi_server.errors",
    "CaseInvalid": "miaopi_server.errors",
    "Catalog": "miaopi_server.decision.catalog",
    "Decision": "miaopi_server.decision.decide",
    "EmbeddedRegistry": "miaopi_server.sources.embedded",
    "Gathered": "miaopi_server.decision.sourced",
    "ItemNotFound": "miaopi_server.errors",
    "NoticeFileError": "miaopi_server.notice.attachment",
    "NoticeInputError": "miaopi_server.notice.content",
    "RegistryInvalid": "miaopi_server.sources.embedded",
    "RuleFileError": "miaopi_server.errors",
    "SourceUnavailable": "miaopi_server.sources.model",
    "TreeHead": "miaopi_server.audit.treehead",
    "canonical": "miaopi_server.audit.canonical",
    "database_consistency": "miaopi_server.audit.sqlite_verify",
    "decision_json": "miaopi_server.audit.decision_json",
    "decision_message": "miaopi_server.edge.convert",
    "explain": "miaopi_server.decision.explain",
    "facts_from_struct": "miaopi_server.edge.convert",
    "gather": "miaopi_server.ops.lookups",
    "hash_body": "miaopi_server.audit.record",
    "is_pdf": "miaopi_server.notice.attachment",
    "json_value": "miaopi_server.audit.decision_json",
    "key_id_of": "miaopi_server.audit.seal",
    "leaf_hash": "miaopi_server.audit.merkle",
    "lint": "miaopi_server.rules.lint",
    "load_catalog": "miaopi_server.decision.catalog",
    "material_json": "miaopi_server.audit.decision_json",
    "notice_attachment": "miaopi_server.notice.attachment",
    "printed_mismatch": "miaopi_server.notice.attachment",
    "sealed_summary": "miaopi_server.notice.attachment",
    "public_key_from_pem": "miaopi_server.audit.seal",
    "read_witness": "miaopi_server.audit.witness",
    "render_notice_html": "miaopi_server.notice.html",
    "render_notice_pdf": "miaopi_server.notice.pdf",
    "root_from_inclusion": "miaopi_server.audit.merkle",
    "roots_from_consistency": "miaopi_server.audit.merkle",
    "shanghai_today": "miaopi_server.clock",
    "store_consistency": "miaopi_server.audit.postgres.readonly",
    "store_records": "miaopi_server.audit.postgres.readonly",
    "verify_database": "miaopi_server.audit.sqlite_verify",
    "verify_seal": "miaopi_server.audit.seal",
    "verify_store": "miaopi_server.audit.postgres.readonly",
    "witness_path": "miaopi_server.audit.witness",
}
__all__ = [
    "AuditUnavailable",
    "CaseInvalid",
    "Catalog",
    "Decision",
    "EmbeddedRegistry",
    "Gathered",
    "ItemNotFound",
    "NoticeFileError",
    "NoticeInputError",
    "RegistryInvalid",
    "RuleFileError",
    "SourceUnavailable",
    "TreeHead",
    "canonical",
    "database_consistency",
    "decision_json",
    "decision_message",
    "explain",
    "facts_from_struct",
    "gather",
    "hash_body",
    "is_pdf",
    "json_value",
    "key_id_of",
    "leaf_hash",
    "lint",
    "load_catalog",
    "material_json",
    "notice_attachment",
    "printed_mismatch",
    "public_key_from_pem",
    "read_witness",
    "render_notice_html",
    "render_notice_pdf",
    "root_from_inclusion",
    "roots_from_consistency",
    "sealed_summary",
    "shanghai_today",
    "store_consistency",
    "store_records",
    "verify_database",
    "verify_seal",
    "verify_store",
    "witness_path",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return __all__
