"""A real PostgreSQL for the tests: initdb in a temporary directory as the unprivileged
`postgres` user (the server refuses to run as root), on a free loopback port, stopped after.
The Makefile's test set-up installs Debian's postgresql when pg_ctl is missing; without it
these tests fail, they never skip."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    assert found, (
        f"PostgreSQL's {name} is not installed (/usr/lib/postgresql/*/bin): `make test` "
        "installs Debian's postgresql package"
    )
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster; `database()` makes a fresh empty database in it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="miaopi-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.sock.mkdir()
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
            self.user = "postgres"
        else:
            import getpass

            self.user = getpass.getuser()
        self._run(_bin("initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
                  "--locale=C.UTF-8", "-E", "UTF8")  # fmt: skip
        self.start()
        self._made = 0

    def _run(self, *argv: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *argv] if self._as_root else list(argv)
        done = subprocess.run(cmd, capture_output=True, text=True, cwd="/", timeout=120)
        assert done.returncode == 0, f"{argv[0]} failed: {done.stdout}{done.stderr}"

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=on"
            " -c max_connections=200 -c shared_buffers=32MB"
        )
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                  str(self.root / "log"), "-w", "start")  # fmt: skip

    def stop(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def database(self) -> str:
        """A new empty database; its DSN."""
        self._made += 1
        name = f"t{self._made}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def query(self, dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return conn.execute(sql, args or None).fetchall()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def migrated_database(server: PostgresServer) -> str:
    """A new database at this server's schema (as `miaopi-server migrate` leaves it)."""
    from miaopi_server.audit.postgres.conn import PgConn
    from miaopi_server.audit.postgres.migrate import migrate

    dsn = server.database()
    with psycopg.connect(dsn, autocommit=True) as raw:
        migrate(PgConn(raw), dsn)
    return dsn


def postgres_session() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()
