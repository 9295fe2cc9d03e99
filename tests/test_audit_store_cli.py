"""`miaopi audit verify --store`, `audit prove-consistency --store` and `audit export --store`:
a PostgreSQL trail checked, proved and exported directly, read-only, without a server. The
trail is written by a real server on a real PostgreSQL (tests/postgres.py); the tampered and
rolled-back databases are copies of it (CREATE DATABASE ... TEMPLATE) changed as the
superuser."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from structlog.testing import capture_logs

from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_client.cli import main
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.postgres import PostgresServer, migrated_database
from tests.support import (
    CENTENARIAN,
    DISABILITY,
    DISABILITY_MATERIALS,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    decide_request,
    resident_id,
    with_facts,
)

SENIOR_CODE, DISABILITY_CODE = "GF00012000", "GF00034001"
PASSWORD = "Pw-s3cret-不可外泄"
_copies = itertools.count(1)


def run(*argv: str) -> tuple[int, str, str]:
    """`miaopi argv...` -> (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with capture_logs(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@dataclass
class Trail:
    pg: PostgresServer
    dsn: str
    pem: Path
    witness: Path  # the node's witness as it stopped: the latest head it signed
    target_export: str  # `miaopi audit export --target` while the server ran
    target_export_senior: str  # the same with --item GF00012000
    heads: list[int]  # tree sizes of the signed heads, ascending

    def sql(self, dsn: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
        return self.pg.query(dsn, query, *args)

    def run_sql(self, dsn: str, *statements: str, args: tuple[Any, ...] = ()) -> None:
        """Statements that return no rows, as the superuser, each with `args`."""
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement, args or None)

    def copy(self) -> str:
        """A new database holding a copy of the trail (to change without touching it)."""
        name = f"copy{next(_copies)}"
        source = self.dsn.rsplit("/", 1)[1]
        self.run_sql(self.pg.dsn(), f"CREATE DATABASE {name} TEMPLATE {source}")
        return self.pg.dsn(name)

    def rolled_back(self) -> tuple[str, int]:
        """A copy whose records after the third-last signed head are gone with their heads
        and nodes: a shorter trail, consistent in itself; its DSN and size."""
        dsn, kept = self.copy(), self.heads[-3]
        self.run_sql(
            dsn,
            "DELETE FROM cases WHERE seq > %s",
            "DELETE FROM records WHERE seq > %s",
            "DELETE FROM tree_heads WHERE tree_size > %s",
            "DELETE FROM tree_nodes WHERE ((idx + 1) << level) > %s",
            args=(kept,),
        )
        return dsn, kept

    def verify(self, dsn: str, *extra: str) -> tuple[int, str, str]:
        return run("audit", "verify", "--store", dsn, "--key", str(self.pem), *extra)


CASES = [
    (SENIOR_CODE, SENIOR, SENIOR_MATERIALS),
    (SENIOR_CODE, with_facts(SENIOR, applicant__name="欧阳秀英"), SENIOR_MATERIALS),
    (SENIOR_CODE, CENTENARIAN, SENIOR_MATERIALS),
    (SENIOR_CODE, SENIOR, []),  # materials missing
    (DISABILITY_CODE, DISABILITY, DISABILITY_MATERIALS),
    (SENIOR_CODE, with_facts(SENIOR, applicant__id_number=resident_id("1915-06-01")),
     SENIOR_MATERIALS),
    (SENIOR_CODE, SENIOR, SENIOR_MATERIALS),
]  # fmt: skip


@pytest.fixture(scope="module")
def trail(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trail]:
    """A real server on --store decides CASES one at a time (a signed head per decision),
    its export through the server is kept, and it stops: the database is left as it wrote it."""
    root = tmp_path_factory.mktemp("pg-trail")
    state = root / "state"
    state.mkdir()
    dsn = migrated_database(postgres)
    with capture_logs():
        server = LiveServer(
            Settings(listen="127.0.0.1:0", rulesets=RULESETS, state_dir=state, store=dsn)
        )
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.ApprovalServiceStub(channel)
            for i, (code, facts, materials) in enumerate(CASES):
                stub.Decide(decide_request(code, facts, materials, request_id=f"r-{i}"))
        pem = root / "seal.pub.pem"
        code, _, err = run("audit", "key", "--target", server.target, "--out", str(pem))
        assert code == 0, err
        exports = []
        for item in ([], ["--item", SENIOR_CODE]):
            out = root / f"target{len(exports)}.jsonl"
            code, _, err = run("audit", "export", "--target", server.target, "--out", str(out),
                               *item)  # fmt: skip
            assert code == 0, err
            exports.append(out.read_text(encoding="utf-8"))
    finally:
        with capture_logs():
            server.stop()
    witness = shutil.copy(state / "audit.witness.json", root / "witness.json")
    heads = [int(n) for (n,) in postgres.query(dsn, "SELECT tree_size FROM tree_heads ORDER BY 1")]
    yield Trail(postgres, dsn, pem, Path(witness), exports[0], exports[1], heads)


def test_a_trail_written_by_a_server_verifies_offline(trail: Trail) -> None:
    """Chain, seals, tree, every signed head and the node's witness, read from the database
    itself: as many records as the trail holds (decisions and the start's publication)."""
    ((count,),) = trail.sql(trail.dsn, "SELECT COUNT(*) FROM records")
    assert count == len(CASES) + 1 and trail.heads[-1] == count
    code, out, err = trail.verify(trail.dsn, "--witness", str(trail.witness))
    assert (code, out.strip(), err) == (0, f"audit trail OK: {count} records", "")
    code, out, _ = trail.verify(trail.dsn, "--witness", str(trail.witness), "--json")
    assert code == 0
    assert json.loads(out) == {"ok": True, "checked": count, "first_bad_seq": 0, "reason": "",
                               "purged": 0}  # fmt: skip
    code, out, _ = trail.verify(trail.dsn, "--no-witness", "--from", "3", "--to", "5")
    assert (code, out.strip()) == (0, "audit trail OK: 3 records")


def test_a_read_only_role_can_verify(trail: Trail) -> None:
    """The office's own login needs SELECT only: nothing the check does writes."""
    trail.run_sql(trail.dsn, "DROP ROLE IF EXISTS auditor", "CREATE ROLE auditor LOGIN",
                  "GRANT SELECT ON ALL TABLES IN SCHEMA public TO auditor")  # fmt: skip
    auditor = trail.dsn.replace(f"//{trail.pg.user}@", "//auditor@")
    code, out, err = trail.verify(auditor, "--witness", str(trail.witness))
    assert code == 0 and out.startswith("audit trail OK: "), err
    code, _, err = run("audit", "export", "--store", auditor)
    assert code == 0 and err.strip() == f"exported {len(CASES)} case(s)"


def test_a_tampered_record_is_found_by_its_seq(trail: Trail) -> None:
    dsn = trail.copy()
    (seq,) = trail.sql(
        dsn,
        "SELECT seq FROM records WHERE kind = 'decision' AND outcome = 'APPROVE'"
        " AND body LIKE '%\"monthly_amount\":30%' ORDER BY seq LIMIT 1",
    )[0]
    changed = trail.sql(
        dsn,
        "UPDATE records SET body = replace(body, '\"monthly_amount\":30', "
        "'\"monthly_amount\":300') WHERE seq = %s RETURNING seq",
        seq,
    )
    assert changed == [(seq,)]
    code, out, _ = trail.verify(dsn, "--witness", str(trail.witness))
    assert code == 1 and out.startswith(f"audit trail BROKEN at seq {seq}: hash mismatch"), out
    code, out, _ = trail.verify(dsn, "--witness", str(trail.witness), "--json")
    assert code == 1 and json.loads(out)["first_bad_seq"] == seq


def test_a_database_rolled_back_behind_its_witness_fails(trail: Trail) -> None:
    """The last records gone with their heads and nodes: a shorter trail consistent in itself
    (it verifies on its own), which only the witness gives away."""
    dsn, kept = trail.rolled_back()
    code, out, _ = trail.verify(dsn, "--no-witness")
    assert (code, out.strip()) == (0, f"audit trail OK: {kept} records")
    code, out, _ = trail.verify(dsn, "--witness", str(trail.witness))
    assert code == 1
    assert out.startswith(
        f"audit trail BROKEN at seq {kept + 1}: behind its witness: {trail.heads[-1]} records "
        f"were signed, the trail holds {kept}"
    ), out


def test_a_saved_head_is_proved_against_the_trail_itself(trail: Trail) -> None:
    """prove-consistency --store: the node's witness is a prefix of the trail's latest signed
    tree (RFC 9162, checked with the key); a copy rolled back behind it is not."""
    code, out, err = run("audit", "prove-consistency", str(trail.witness), "--store", trail.dsn,
                         "--key", str(trail.pem))  # fmt: skip
    size = trail.heads[-1]
    assert (code, err) == (0, ""), out
    assert out.startswith(f"consistent: the signed tree of {size} records")
    code, out, _ = run("audit", "prove-consistency", str(trail.witness), "--store", trail.dsn,
                       "--key", str(trail.pem), "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["ok"] is True and json.loads(out)["second"] == size
    dsn, _ = trail.rolled_back()
    code, out, _ = run("audit", "prove-consistency", str(trail.witness), "--store", dsn,
                       "--key", str(trail.pem))  # fmt: skip
    assert code == 1 and out.startswith("NOT consistent"), out
    code, _, err = run("audit", "prove-consistency", str(trail.witness), "--store", trail.dsn)
    assert code == 2 and "a public key is needed with --store" in err
    code, _, err = run("audit", "prove-consistency", str(trail.witness), "--store", trail.dsn,
                       "--db", "x.sqlite3", "--key", str(trail.pem))  # fmt: skip
    assert code == 2 and "not allowed with argument" in err


def test_export_equals_the_servers(trail: Trail, tmp_path: Path) -> None:
    """The same lines as `audit export --target` gave, oldest first, Chinese text as it was;
    --item filters the same way; to stdout too."""
    out = tmp_path / "store.jsonl"
    code, _, err = run("audit", "export", "--store", trail.dsn, "--out", str(out))
    assert (code, err.strip()) == (0, f"exported {len(CASES)} case(s) to {out}")
    assert out.read_text(encoding="utf-8") == trail.target_export
    assert "欧阳秀英" in trail.target_export
    assert not (tmp_path / "store.jsonl.part").exists()
    code, text, _ = run("audit", "export", "--store", trail.dsn, "--item", SENIOR_CODE)
    assert code == 0 and text == trail.target_export_senior
    assert len(text.splitlines()) == sum(c[0] == SENIOR_CODE for c in CASES)


@pytest.mark.parametrize("command", ["verify", "export", "prove-consistency"])
def test_an_unreachable_database_is_bad_input_without_its_password(
    trail: Trail, tmp_path: Path, command: str
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dsn = f"postgresql://auditor:{PASSWORD}@127.0.0.1:{port}/trail"
    out_file = tmp_path / "out.jsonl"
    extra = {
        "verify": ["--key", str(trail.pem), "--no-witness"],
        "export": ["--out", str(out_file)],
        "prove-consistency": [str(trail.witness), "--key", str(trail.pem)],
    }[command]
    code, out, err = run("audit", command, "--store", dsn, *extra)
    assert code == 2, (out, err)
    assert f"cannot reach audit database postgresql://auditor@127.0.0.1:{port}/trail" in err
    assert PASSWORD not in out + err and "s3cret" not in out + err
    assert not out_file.exists() and not (tmp_path / "out.jsonl.part").exists()


def test_a_database_that_is_not_a_trail_is_bad_input(trail: Trail) -> None:
    empty = trail.pg.database()
    code, _, err = trail.verify(empty, "--no-witness")
    assert code == 2 and "is not an audit trail" in err
    code, _, err = run("audit", "prove-consistency", str(trail.witness), "--store", empty,
                       "--key", str(trail.pem))  # fmt: skip
    assert code == 2 and "is not an audit trail" in err
    code, _, err = run("audit", "export", "--store", empty)
    assert code == 2 and "is not an audit trail" in err


def test_store_options_are_checked(trail: Trail, tmp_path: Path) -> None:
    """--db and --store exclude each other (and --target); --store needs a witness or
    --no-witness and a postgresql:// DSN, which is not echoed back."""
    code, _, err = trail.verify(trail.dsn, "--db", str(tmp_path / "a.sqlite3"), "--no-witness")
    assert code == 2 and "not allowed with argument" in err
    code, _, err = run("audit", "export", "--store", trail.dsn, "--db", "x.sqlite3")
    assert code == 2 and "not allowed with argument" in err
    code, _, err = trail.verify(trail.dsn, "--no-witness", "--target", "127.0.0.1:1")
    assert code == 2 and "give --target or --store, not both" in err
    code, _, err = trail.verify(trail.dsn)
    assert code == 2 and "--store needs a witness: --witness FILE" in err
    code, _, err = trail.verify(trail.dsn, "--witness", str(tmp_path / "none.json"))
    assert code == 2 and "cannot read witness" in err
    code, _, err = run("audit", "verify", "--store", trail.dsn, "--no-witness")
    assert code == 2 and "a public key is needed" in err
    code, _, err = trail.verify(f"host=127.0.0.1 password={PASSWORD}", "--no-witness")
    assert code == 2 and "expected a PostgreSQL DSN" in err and PASSWORD not in err


def test_the_snapshot_is_read_only_repeatable_read_and_streams(trail: Trail) -> None:
    """What the check reads through: one REPEATABLE READ READ ONLY transaction, rows from a
    named server-side cursor a batch at a time, refused if it tried to write."""
    from miaopi_server.audit.postgres.readonly import BATCH, snapshot

    with snapshot(trail.dsn) as conn:
        settings = {
            name: conn.raw.execute(f"SHOW {name}").fetchone()[0]
            for name in ("transaction_isolation", "transaction_read_only",
                         "default_transaction_read_only")
        }  # fmt: skip
        assert settings == {"transaction_isolation": "repeatable read",
                            "transaction_read_only": "on",
                            "default_transaction_read_only": "on"}  # fmt: skip
        rows = iter(conn.execute("SELECT seq FROM records WHERE seq >= ? ORDER BY seq", (1,)))
        assert next(rows) == (1,)
        open_cursors = conn.raw.execute(
            "SELECT name, statement FROM pg_cursors WHERE name LIKE 'miaopi_read_%'"
        ).fetchall()
        assert len(open_cursors) == 1 and "FROM records" in open_cursors[0][1]
        assert [r[0] for r in rows] == list(range(2, trail.heads[-1] + 1))
        assert BATCH >= 100
        gone = conn.raw.execute("SELECT COUNT(*) FROM pg_cursors WHERE name LIKE 'miaopi_read_%'")
        assert gone.fetchone() == (0,)  # closed once read
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.raw.execute("DELETE FROM tree_heads")
