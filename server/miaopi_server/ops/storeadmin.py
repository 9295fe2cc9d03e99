"""The shared audit store (PostgreSQL): opening it for a node, and `miaopi-server migrate`.

`miaopi-server migrate --store DSN` brings the database's schema to this server's (a node
never migrates a shared database by itself: it refuses one that is behind). With
`--from-sqlite FILE` it then moves a node's SQLite trail into the (empty) database: the SQLite
trail is opened and verified first (with the node's seal key and witness, beside it), copied
byte for byte, and verified again in PostgreSQL against the same witness, so every receipt
the node gave keeps verifying. Stop the node first: what it records during the copy is not
copied.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from miaopi_server.audit import seal
from miaopi_server.audit.chainstore import ChainStore
from miaopi_server.audit.postgres.copy import copy_trail
from miaopi_server.audit.postgres.migrate import migrate
from miaopi_server.audit.postgres.store import PostgresAuditStore, is_postgres
from miaopi_server.audit.seal import Sealer
from miaopi_server.audit.sqlite import SQLiteAuditStore
from miaopi_server.errors import AuditUnavailable, MiaopiError


def open_shared_store(
    dsn: str,
    state_dir: Path,
    sealer: Sealer,
    previous: dict[str, bytes],
    busy_timeout_ms: int,
    reanchor: str,
    node_id: str,
) -> ChainStore:
    if not is_postgres(dsn):
        raise AuditUnavailable("--store takes a postgresql://... DSN (SQLite is the default)")
    return PostgresAuditStore(
        dsn, state_dir, sealer, busy_timeout_ms, previous, reanchor=reanchor, node_id=node_id
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="miaopi-server migrate",
        description="Bring a PostgreSQL audit database to this server's schema; with "
        "--from-sqlite, then move a node's SQLite trail into it (docs/AUDIT.md).",
    )
    p.add_argument("--store", required=True, metavar="DSN", help="postgresql://USER@HOST/DB")
    p.add_argument(
        "--from-sqlite",
        type=Path,
        metavar="FILE",
        help="a node's audit.sqlite3 (the node stopped) to copy into the empty database",
    )
    p.add_argument(
        "--seal-key",
        type=Path,
        help="the node's sealing key (default: seal_ed25519.pem beside --from-sqlite)",
    )
    p.add_argument(
        "--previous-seal-key",
        type=Path,
        action="append",
        default=[],
        help="public key (PEM) of a rotated-out sealing key; repeatable",
    )
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not is_postgres(args.store):
        print("miaopi-server migrate: --store takes a postgresql://... DSN")
        return 2
    try:
        from miaopi_server.audit.postgres.conn import PgConn, open_pool, where

        pool = open_pool(args.store, 5000, 1)
        try:
            with pool.connection() as raw:
                done = migrate(PgConn(raw), where(args.store))
        finally:
            pool.close()
        print(
            f"migrated {where(args.store)}: applied {', '.join(done)}"
            if done
            else f"{where(args.store)} is up to date"
        )
        if args.from_sqlite is not None:
            return _move(args)
    except MiaopiError as exc:
        print(f"miaopi-server migrate: {exc}")
        return 1
    return 0


def _move(args: argparse.Namespace) -> int:
    source: Path = args.from_sqlite
    if not source.is_file():
        print(f"miaopi-server migrate: no SQLite trail at {source}")
        return 2
    state_dir = source.parent
    key_path = args.seal_key or state_dir / "seal_ed25519.pem"
    if not key_path.is_file():  # never make a new key here: the trail's must verify
        print(f"miaopi-server migrate: the node's sealing key {key_path} is missing")
        return 2
    sealer, _ = seal.load_or_create(key_path)
    previous = {}
    for pem in args.previous_seal_key:
        raw = seal.public_key_from_pem(pem.read_text(encoding="utf-8"))
        previous[seal.key_id_of(raw)] = raw
    old = SQLiteAuditStore(source, sealer, previous_keys=previous)
    try:
        before = old.verify()
    finally:
        old.close()
    if not before.ok:
        print(f"miaopi-server migrate: {source} does not verify, not copied: {before.reason}")
        return 1
    counts = copy_trail(source, args.store)
    new = PostgresAuditStore(args.store, state_dir, sealer, previous_keys=previous)
    try:
        after = new.verify()
    finally:
        new.close()
    print(
        f"copied {counts.get('records', 0)} records ("
        + ", ".join(f"{t} {n}" for t, n in sorted(counts.items()))
        + f") from {source}"
    )
    if not after.ok or after.checked != before.checked:
        print(f"miaopi-server migrate: the copy does not verify: {after.reason}")
        return 1
    print(f"audit trail OK in PostgreSQL: {after.checked} records, as in {source}")
    return 0
