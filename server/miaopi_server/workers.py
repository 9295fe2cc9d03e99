"""`--workers N`: N server processes sharing one port and one audit trail.

One Python process is bound by its GIL to about one core. The supervisor prepares what the
workers share (seal key, development credentials, the audit database), reserves the port, and
starts N copies of the server with SO_REUSEPORT, so the kernel spreads connections over them.
Every worker appends to the same SQLite audit database; the writer reads the chain head under
the database's write lock, so the hash chain runs through all of them in seq order, and the
unique request_id index keeps idempotency across workers.

Signals: SIGTERM / SIGINT stop every worker (each drains its in-flight calls); SIGHUP is
forwarded, so every worker reloads the rule files; a worker that served ReloadRulesets sends
the supervisor SIGUSR1, which becomes a SIGHUP for all. A worker that dies stops the others and
the supervisor exits non-zero, for the process manager to restart the whole set. A worker whose
supervisor disappears stops itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("miaopi.workers")
READY = "miaopi-worker-ready"  # the line a worker prints on stdout once it serves


def reserve_port(listen: str) -> tuple[str, socket.socket | None]:
    """`listen` with a concrete port. For port 0, a free port is bound (not listened on) with
    SO_REUSEPORT and held until every worker has bound it too."""
    host, _, port = listen.rpartition(":")
    if int(port) != 0:
        return listen, None
    bare = host.strip("[]")
    family, kind, proto, _, addr = socket.getaddrinfo(bare, 0, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(addr)
    return f"{host}:{sock.getsockname()[1]}", sock


def worker_argv(argv: list[str], listen: str, index: int) -> list[str]:
    # argparse keeps the last value of a repeated option.
    return [sys.executable, "-m", "miaopi_server.app", *argv, "--listen", listen,
            "--workers", "1", "--worker-index", str(index)]  # fmt: skip


def supervise(argv: list[str], listen: str, workers: int, prepare: Callable[[], None]) -> int:
    """Run `workers` servers on `listen` until SIGTERM / SIGINT; the exit code of the set."""
    prepare()
    listen, reservation = reserve_port(listen)
    pending: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, lambda signum, _frame: pending.append(signum))
    procs: list[subprocess.Popen[str]] = []
    try:
        for i in range(workers):
            proc = subprocess.Popen(worker_argv(argv, listen, i), stdout=subprocess.PIPE, text=True)
            procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until the worker serves or exits
            if not line.startswith(READY):
                code = proc.wait()
                log.error("worker.failed_to_start", worker=i, exit_code=code)
                _stop(procs)
                return code or 1
    finally:
        if reservation is not None:
            reservation.close()
    log.info("server.started", listen=listen, workers=workers, pids=[p.pid for p in procs])
    return _run(procs, pending)


def _run(procs: list[subprocess.Popen[str]], pending: list[int]) -> int:
    while True:
        while pending:
            signum = pending.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("server.stopping", workers=len(procs))
                codes = _stop(procs)
                log.info("server.stopped", exit_codes=codes)
                return max(codes, default=0)
            for p in procs:  # SIGHUP, or SIGUSR1 from a worker that reloaded over RPC
                p.send_signal(signal.SIGHUP)
        for i, p in enumerate(procs):
            if p.poll() is not None:
                log.error("worker.exited", worker=i, exit_code=p.returncode)
                _stop(procs)
                return p.returncode or 1
        time.sleep(0.1)


def _stop(procs: list[subprocess.Popen[str]], timeout: float = 30) -> list[int]:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return [p.returncode for p in procs]


def announce_ready() -> None:
    """Tell the supervisor this worker serves; stdout then joins stderr, so the pipe the
    supervisor no longer reads can never fill up."""
    print(READY, flush=True)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


def notify_reloaded() -> None:
    """After a ReloadRulesets RPC: ask the supervisor to make every worker reload."""
    os.kill(os.getppid(), signal.SIGUSR1)


def orphaned(parent: int) -> bool:
    return os.getppid() != parent
