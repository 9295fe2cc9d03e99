"""The PostgreSQL schema is the operator's: `miaopi-server migrate` applies it, a node refuses
a database behind or ahead of it; and a node's SQLite trail moves into PostgreSQL with every
old receipt still verifying."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from structlog.testing import capture_logs

from miaopi_server.app import main
from miaopi_server.audit import seal
from miaopi_server.audit.postgres.store import PostgresAuditStore
from miaopi_server.audit.sqlite import SQLiteAuditStore
from miaopi_server.audit.store import PublishedSet
from miaopi_server.errors import AuditSchemaTooNew, AuditUnavailable
from tests.postgres import PostgresServer, migrated_database
from tests.support import RULESETS, pending


def migrate(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["migrate", *argv])
    return code, out.getvalue()


def test_a_node_refuses_a_database_not_migrated_and_migrate_applies_once(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    dsn = postgres.database()
    started = subprocess.run(
        [sys.executable, "-m", "miaopi_server.app", "--listen", "127.0.0.1:0", "--rulesets",
         str(RULESETS), "--state-dir", str(tmp_path), "--store", dsn, "--insecure-no-auth",
         "--log-format", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert started.returncode == 1
    assert "is at schema version 0, this server needs 3" in started.stderr
    assert "miaopi-server migrate --store" in started.stderr
    assert "password" not in started.stderr
    applied = "0001_schema, 0002_published_rulesets, 0003_escalation_outbox"
    assert migrate("--store", dsn) == (0, f"migrated {dsn}: applied {applied}\n")
    code, out = migrate("--store", dsn)
    assert code == 0 and "is up to date" in out
    sealer, _ = seal.load_or_create(tmp_path / "key.pem")
    PostgresAuditStore(dsn, tmp_path, sealer).close()


def test_a_node_refuses_a_database_a_newer_server_migrated(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    dsn = migrated_database(postgres)
    postgres.query(dsn, "INSERT INTO schema_version VALUES (4, '0004_future', 'now')"
                   " RETURNING version")  # fmt: skip
    sealer, _ = seal.load_or_create(tmp_path / "key.pem")
    with pytest.raises(AuditSchemaTooNew, match="schema version 4, newer"):
        PostgresAuditStore(dsn, tmp_path, sealer)
    code, out = migrate("--store", dsn)
    assert code == 1 and "newer than this server knows" in out


def test_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    sealer, _ = seal.load_or_create(tmp_path / "key.pem")
    with pytest.raises(AuditUnavailable, match="cannot reach audit database postgresql://"):
        PostgresAuditStore("postgresql://nobody:secret@127.0.0.1:1/x", tmp_path, sealer,
                           busy_timeout_ms=500)  # fmt: skip


def test_a_dsn_that_does_not_parse_is_refused_without_its_password(tmp_path: Path) -> None:
    """psycopg's parse error quotes the bad token, here the password: neither the raised
    message nor any log line (the pool's own included) may carry it."""
    sealer, _ = seal.load_or_create(tmp_path / "key.pem")
    with capture_logs() as logs, pytest.raises(AuditUnavailable) as raised:
        PostgresAuditStore("postgresql://u:s3cr%zzet@127.0.0.1:1/db", tmp_path, sealer,
                           busy_timeout_ms=500)  # fmt: skip
    assert "does not parse" in str(raised.value)
    assert "s3cr" not in str(raised.value) and "s3cr" not in json.dumps(logs, default=str)


def test_the_pools_connection_errors_are_logged_without_their_details() -> None:
    """Through the server's log set-up (ops/logs.py), a psycopg pool warning names the pool
    and the error's type, never libpq's text (which may quote the DSN)."""
    leaked = psycopg.OperationalError('invalid connection option: password="s3cr%zzet"')
    with capture_logs() as logs:
        logging.getLogger("psycopg.pool").warning(
            "error connecting in %r: %s", "miaopi-audit", leaked
        )
    (line,) = [e for e in logs if e["event"] == "library.log"]
    assert line["logger"] == "psycopg.pool"
    assert "error connecting in 'miaopi-audit'" in line["message"]
    assert "OperationalError" in line["message"] and "s3cr" not in line["message"]


def test_a_sqlite_trail_moves_into_postgresql_and_old_receipts_verify(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    state = tmp_path / "var"
    state.mkdir()
    sealer, _ = seal.load_or_create(state / "seal_ed25519.pem")
    old = SQLiteAuditStore(state / "audit.sqlite3", sealer, node_id="n1")
    for first, size in ((1, 3), (4, 9), (13, 2)):
        for f in [old.append(pending(i)) for i in range(first, first + size)]:
            f.result(timeout=20)
    old.publish(PublishedSet("sha256:set", {"r/a.yaml": "规则"}, {"A@1": "sha256:a"}), {})
    old.purge("2026-11-23T00:00:02.000000Z", "admin")
    receipts = {i: old.get(f"d{i}") for i in range(1, 16)}
    old.close()
    dsn = postgres.database()
    code, out = migrate("--store", dsn, "--from-sqlite", str(state / "audit.sqlite3"))
    assert code == 0, out
    assert "copied 16 records" in out and "audit trail OK in PostgreSQL: 16 records" in out
    with sqlite3.connect(state / "audit.sqlite3") as conn:
        for table, order in (("records", "seq"), ("cases", "seq"), ("tree_heads", "tree_size"),
                             ("tree_nodes", "level, idx"), ("published_rulesets", "set_digest"),
                             ("published_items", "item_digest")):  # fmt: skip
            sql = f"SELECT * FROM {table} ORDER BY {order}"
            mine = [tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in r)
                    for r in postgres.query(dsn, sql)]  # fmt: skip
            assert mine == conn.execute(sql).fetchall(), table
    code, out = migrate("--store", dsn, "--from-sqlite", str(state / "audit.sqlite3"))
    assert code == 1 and "already holds records" in out  # copied into an empty trail only
    new = PostgresAuditStore(dsn, state, sealer, node_id="n1")  # the node's witness agrees
    try:
        for i, before in receipts.items():
            assert new.get(f"d{i}") == before
        new.append(pending(99)).result(timeout=20)
        v = new.verify()
        assert (v.ok, v.checked, v.purged) == (True, 17, 1), v
        archived = new.published_set("sha256:a")
        assert archived is not None and archived.files == {"r/a.yaml": "规则"}
    finally:
        new.close()
