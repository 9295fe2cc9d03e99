"""A PostgreSQL primary with a synchronous streaming-replication standby, on loopback, for the
failover drill (tests/drill/failover.py). Built on tests/postgres.py's PostgresServer: the
same unprivileged `postgres` user, temporary directory, free port and fsync=on."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.postgres import PostgresServer, _bin, _free_port

STANDBY_NAME = "standby1"


class Primary(PostgresServer):
    """A primary whose commits wait for STANDBY_NAME to have flushed their WAL
    (synchronous_commit=on): a commit it acknowledges is on both machines' disks."""

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=on"
            " -c max_connections=200 -c shared_buffers=32MB -c wal_level=replica"
            " -c max_wal_senders=5 -c wal_keep_size=256MB"
            f" -c synchronous_standby_names={STANDBY_NAME} -c synchronous_commit=on"
        )
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                  str(self.root / "log"), "-w", "start")  # fmt: skip

    def wait_sync(self, timeout: float) -> tuple[Any, ...]:
        """Until STANDBY_NAME streams as the synchronous standby; its pg_stat_replication row."""
        deadline = time.monotonic() + timeout
        sql = "SELECT application_name, state, sync_state FROM pg_stat_replication"
        while time.monotonic() < deadline:
            for row in self.query(self.dsn(), sql):
                if row == (STANDBY_NAME, "streaming", "sync"):
                    return row
            time.sleep(0.1)
        raise RuntimeError(f"no synchronous standby: {self.query(self.dsn(), sql)}")

    def pids(self) -> list[int]:
        """The postmaster and its children (backends, walsenders, background workers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        children = []
        for task in Path(f"/proc/{postmaster}/task").iterdir():
            children += [int(p) for p in (task / "children").read_text().split()]
        return [postmaster, *children]

    def kill(self) -> list[int]:
        """SIGKILL every process of this cluster at once, as if its machine died; returns
        once none of them runs any more (a zombie no init reaps counts as dead)."""
        pids = self.pids()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(_running(p) for p in pids):
            assert time.monotonic() < deadline, f"PostgreSQL processes {pids} outlived SIGKILL"
            time.sleep(0.01)
        return pids

    def discard(self) -> None:
        """The killed primary's files (it must never come back as a primary)."""
        shutil.rmtree(self.root, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Standby(PostgresServer):
    """A hot standby made with `pg_basebackup -R` from `primary`, streaming as STANDBY_NAME
    (cluster_name is the walreceiver's application_name), which the primary waits for."""

    def __init__(self, primary: Primary) -> None:  # no initdb: a copy of the primary
        self.root = Path(tempfile.mkdtemp(prefix="miaopi-pg-standby-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.sock.mkdir()
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        self.user = primary.user
        self._made = primary._made
        self._run(_bin("pg_basebackup"), "-D", str(self.data), "-h", "127.0.0.1",
                  "-p", str(primary.port), "-U", self.user, "-R", "-X", "stream",
                  "-c", "fast")  # fmt: skip
        self.start()

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=on"
            " -c max_connections=200 -c shared_buffers=32MB -c hot_standby=on"
            f" -c cluster_name={STANDBY_NAME}"
        )
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                  str(self.root / "log"), "-w", "start")  # fmt: skip

    def promote(self) -> None:
        """Make this standby the primary (pg_ctl promote, waiting until it accepts writes).
        It has no synchronous standby of its own: commits are durable on this machine only
        until a new standby is attached (docs/DEPLOY.md)."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-w", "promote")
