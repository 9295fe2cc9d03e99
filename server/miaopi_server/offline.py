"""The server's engine for tools that work without a server: the `miaopi` CLI's offline
commands (replay, rules lint/test/explain/diff) and the audit verifiers.

This is the one module the client package imports from miaopi_server; everything else in the
server is private to it. Importing it loads the rules engine, so clients import it inside the
commands that need it.
"""

from __future__ import annotations

from miaopi_server.audit.canonical import canonical
from miaopi_server.audit.decision_json import decision_json, json_value, material_json
from miaopi_server.audit.merkle import leaf_hash, root_from_inclusion, roots_from_consistency
from miaopi_server.audit.record import hash_body
from miaopi_server.audit.seal import key_id_of, public_key_from_pem, verify_seal
from miaopi_server.audit.sqlite_verify import database_consistency, verify_database
from miaopi_server.audit.treehead import TreeHead
from miaopi_server.audit.witness import read_witness, witness_path
from miaopi_server.clock import shanghai_today
from miaopi_server.decision.catalog import Catalog, load_catalog
from miaopi_server.decision.decide import Decision
from miaopi_server.decision.explain import explain
from miaopi_server.edge.convert import decision as decision_message
from miaopi_server.edge.convert import struct_to_dict as facts_from_struct
from miaopi_server.errors import CaseInvalid, ItemNotFound, RuleFileError
from miaopi_server.rules.lint import lint

__all__ = [
    "CaseInvalid",
    "Catalog",
    "Decision",
    "ItemNotFound",
    "RuleFileError",
    "TreeHead",
    "canonical",
    "database_consistency",
    "decision_json",
    "decision_message",
    "explain",
    "facts_from_struct",
    "hash_body",
    "json_value",
    "key_id_of",
    "leaf_hash",
    "lint",
    "load_catalog",
    "material_json",
    "public_key_from_pem",
    "read_witness",
    "root_from_inclusion",
    "roots_from_consistency",
    "shanghai_today",
    "verify_database",
    "verify_seal",
    "witness_path",
]
