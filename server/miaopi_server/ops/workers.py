"""`--workers N`: N server processes sharing one port and one audit trail.

One Python process is bound by its GIL to about one core. The supervisor prepares what the
workers share (seal key, development credentials, the audit database), reserves the port, and
starts N copies of the server with SO_REUSEPORT, so the kernel spreads connections over them.
Every worker appends to the same SQLite audit database; the writer reads the chain head under
the database's write lock, so the hash chain runs through all of them in seq order, and the
unique request_id index keeps idempotency across workers.

Signals: SIGTERM / SIGINT stop every worker (each drains its in-flight calls); SIGHUP is
forwarded, so every worker reloads the rule files; a worker that served ReloadRulesets (or,
with `--watch`, worker 0, the one that watches) sends the supervisor SIGUSR1, which becomes a
SIGHUP for all. Each such reload is one act: its id is written to the state directory's
`reload-act` file before the workers are signalled (by the supervisor for a SIGHUP, by the
worker for its own reload), each worker reads it with the signal, and the act's publication is
recorded once however many workers carry it out (ops/publish.py). A worker that dies stops the
others and the supervisor exits non-zero, for the process manager to restart the whole set. A
worker whose supervisor disappears stops itself.

With `--metrics-listen` the supervisor serves the set's metrics: the workers write theirs into
files of a directory it gives them, and it sums them (ops/metrics.py).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import structlog

from miaopi_server.ops.metrics import WorkerSetMetrics

log = structlog.get_logger("miaopi.workers")
READY = "miaopi-worker-ready"  # the line a worker prints on stdout once it serves
SUPERVISOR_ENV = "MIAOPI_SUPERVISOR_PID"  # set for workers: who may be sent SIGUSR1
ACT_FILE = "reload-act"  # in the state directory: the id of the reload the workers carry out


def new_act() -> str:
    return str(uuid.uuid4())


def write_act(state_dir: Path, act: str) -> None:
    """Make `act` the reload the next SIGHUP stands for (whole, by rename). If it cannot be
    written, the previous act is removed too: the workers then read none, and each records
    its reload as its own (the same act more than once, never a reload left unrecorded)."""
    path = state_dir / ACT_FILE
    part = path.with_name(f"{ACT_FILE}.{os.getpid()}.part")
    try:
        part.write_text(act, encoding="ascii")
        os.replace(part, path)
    except OSError as exc:
        log.warning("workers.act_not_written", path=str(exc.filename or path), error=str(exc))
        clear_act(state_dir)
        with suppress(OSError):
            part.unlink()


def clear_act(state_dir: Path) -> None:
    """No act to read (a supervisor starting: its workers' acts are its own)."""
    try:
        (state_dir / ACT_FILE).unlink()
    except (FileNotFoundError, NotADirectoryError):
        pass  # none there
    except OSError as exc:  # e.g. a directory in its place: read as none all the same
        log.warning("workers.act_not_cleared", path=str(state_dir / ACT_FILE), error=str(exc))


def current_act(state_dir: Path) -> str:
    """The act the file names; "" when there is none to read."""
    try:
        act = (state_dir / ACT_FILE).read_text(encoding="ascii").strip()
        return str(uuid.UUID(act))
    except (OSError, ValueError):
        return ""


class SighupActs:
    """What each SIGHUP to a worker stands for: the act its supervisor (or a fellow worker)
    wrote down before the signal. An act this worker read at an earlier SIGHUP is not the
    new one (it could not be written, or the worker was signalled directly): that reload is
    the worker's own, recorded as such ("")."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self._read: set[str] = set()

    def next(self) -> str:
        act = current_act(self.state_dir)
        if not act or act in self._read:
            return ""
        self._read.add(act)
        return act


class Relay:
    """A worker's reload made every worker's: the act's id is written first, then the
    supervisor is asked (SIGUSR1) to relay a SIGHUP to all."""

    new_act = staticmethod(new_act)

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir

    def __call__(self, act: str) -> None:
        write_act(self.state_dir, act)
        notify_reloaded()


class PortError(OSError):
    """The address cannot be served by a set of workers."""


def reserve_port(listen: str) -> tuple[str, socket.socket]:
    """`listen` with a concrete port, and a socket holding it (bound with SO_REUSEPORT, not
    listening) until every worker has bound it too. A port some other socket holds is
    refused first, so a second set of workers can never quietly share it."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or host.startswith("unix"):
        raise PortError(f"--workers needs --listen HOST:PORT, not {listen!r}")
    bare = host.strip("[]")
    family, kind, proto, _, addr = socket.getaddrinfo(bare, int(port), type=socket.SOCK_STREAM)[0]
    if int(port) != 0:
        with socket.socket(family, kind, proto) as probe:  # no SO_REUSEPORT: fails if taken
            # SO_REUSEADDR as gRPC sets it: connections of a previous run in TIME_WAIT do not
            # count, a socket listening on the port does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(addr)
            except OSError as exc:
                raise PortError(f"cannot listen on {listen}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(addr)
    return f"{host}:{sock.getsockname()[1]}", sock


def worker_argv(argv: list[str], listen: str, index: int) -> list[str]:
    # argparse keeps the last value of a repeated option.
    return [sys.executable, "-m", "miaopi_server.app", *argv, "--listen", listen,
            "--workers", "1", "--worker-index", str(index)]  # fmt: skip


def exit_code(code: int | None) -> int:
    """A worker's return code as a shell would report it (killed by signal n: 128 + n)."""
    if code is None:
        return 1
    return 128 - code if code < 0 else code


def supervise(
    argv: list[str],
    listen: str,
    workers: int,
    state_dir: Path,
    prepare: Callable[[], None],
    metrics: Callable[[], WorkerSetMetrics] | None = None,
) -> int:
    """Run `workers` servers on `listen` until SIGTERM / SIGINT; the exit code of the set.
    `metrics`, when given, starts the endpoint serving the set's metrics (ops/metrics.py)."""
    pending: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, lambda signum, _frame: pending.append(signum))
    listen, reservation = reserve_port(listen)
    try:
        prepare()
        exporter = metrics() if metrics is not None else None
    except BaseException:
        reservation.close()
        raise
    procs: list[subprocess.Popen[str]] = []
    try:
        return _start_and_run(
            argv, listen, workers, reservation, exporter, procs, pending, state_dir
        )
    finally:
        if exporter is not None:
            for p in procs:
                exporter.worker_exited(p.pid)
            exporter.close()


def _start_and_run(
    argv: list[str],
    listen: str,
    workers: int,
    reservation: socket.socket,
    exporter: WorkerSetMetrics | None,
    procs: list[subprocess.Popen[str]],
    pending: list[int],
    state_dir: Path,
) -> int:
    clear_act(state_dir)  # an act left by an earlier run is none of these workers'
    env = {**os.environ, SUPERVISOR_ENV: str(os.getpid())}
    if exporter is not None:
        env.update(exporter.worker_env)
    try:
        for i in range(workers):
            # A session of its own: a terminal's Ctrl-C or hang-up reaches the supervisor
            # only, which stops or reloads the workers in order.
            proc = subprocess.Popen(
                worker_argv(argv, listen, i),
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
                env=env,
            )
            procs.append(proc)
            problem = _wait_ready(proc, pending)
            if problem == "stopped":
                log.info("server.stopping", workers=len(procs), during="start-up")
                _stop(procs)
                return 0
            if problem is not None:
                log.error("worker.failed_to_start", worker=i, problem=problem)
                codes = _stop(procs)
                return max(1, *(exit_code(c) for c in codes))
    finally:
        reservation.close()
    log.info("server.started", listen=listen, workers=workers, pids=[p.pid for p in procs])
    return _run(procs, pending, state_dir)


def _wait_ready(proc: subprocess.Popen[str], pending: list[int]) -> str | None:
    """None once the worker says it serves; else why not ("stopped" on SIGTERM / SIGINT)."""
    assert proc.stdout is not None
    while True:
        if any(sig in (signal.SIGTERM, signal.SIGINT) for sig in pending):
            return "stopped"
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(READY):
                return None
            return f"exited with {exit_code(proc.wait())}" if not line else "unexpected output"
        if proc.poll() is not None:
            return f"exited with {exit_code(proc.returncode)}"


def _run(procs: list[subprocess.Popen[str]], pending: list[int], state_dir: Path) -> int:
    while True:
        while pending:
            signum = pending.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("server.stopping", workers=len(procs))
                codes = [exit_code(c) for c in _stop(procs)]
                log.info("server.stopped", exit_codes=codes)
                return next((c for c in codes if c != 0), 0)
            if signum == signal.SIGHUP:  # a new act; SIGUSR1: the worker that asked wrote it
                write_act(state_dir, new_act())
            for p in procs:
                p.send_signal(signal.SIGHUP)
        for i, p in enumerate(procs):
            if p.poll() is not None:
                log.error("worker.exited", worker=i, exit_code=exit_code(p.returncode))
                _stop(procs)
                return exit_code(p.returncode) or 1
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
    """After a reload of this worker's own (ReloadRulesets, or the watch): ask the supervisor
    to make every worker reload. Only a supervisor that started this process is signalled
    (SIGUSR1 would end a shell); one that is gone meanwhile is not an error (this worker
    stops by itself when it notices)."""
    parent = os.getppid()
    if os.environ.get(SUPERVISOR_ENV) == str(parent):
        with suppress(ProcessLookupError):
            os.kill(parent, signal.SIGUSR1)


def orphaned(parent: int) -> bool:
    return os.getppid() != parent
