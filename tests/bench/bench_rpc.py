"""RPC ceiling ratio (spec part 1) and audit cost (part 5), driven by h2load over h2c.

Servers, each a subprocess on 127.0.0.1 with a port of its own choosing (port 0), nothing pinned:
- empty:      tests/bench/empty_server.py, one unary method returning google.protobuf.Empty
              (the same grpcio as miaopi), request = an empty gRPC frame.
- miaopi:     `python -m miaopi_server.app` exactly as shipped: authentication ON with a
              generated credentials file (bearer token, window principal), --rate 0 (no rate
              limit), --watch 0, --log-level info (one `decision` JSON line per decision, to a
              file), audit trail on (SQLite WAL, synchronous=FULL, group commit).
- workers:    the same command with `--workers 2`: two server processes on one port
              (SO_REUSEPORT) appending to the one audit database (see miaopi_server/ops/workers.py).
- counted:    the same server through tests/bench/bench_server.py, which only adds the audit
              store's counters (group commits and records) at shutdown.
- unrecorded: the same, with the bench-only recorder that skips the audit trail ("audit off",
              see bench_server.py for exactly what is skipped).

The request is a prepared gRPC message (1-byte flag 0, 4-byte big-endian length, serialized
DecideRequest for GF00012000 / tests.support.SENIOR, age 76, APPROVE with monthly_amount 30),
POSTed by h2load with content-type application/grpc and te: trailers (and the bearer token).
h2load counts HTTP statuses only; a gRPC error is an HTTP 200 with grpc-status != 0 in the
trailers, so every server run is checked after it stops: miaopi's audit database must hold
exactly one APPROVE record per request h2load counted as succeeded (plus the preflight), and
the other servers' own counters must equal h2load's count. Each server is first sent the same
bytes once with a real gRPC client (preflight), which must answer OK and APPROVE.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from miaopi.v1 import approval_pb2 as pb
from tests.support import SENIOR, SENIOR_MATERIALS

from . import profiles
from .common import (
    PY,
    ROOT,
    RULESETS,
    WORK,
    Proc,
    fsync_probe,
    log,
    median,
    start,
    wait_for,
    write_credentials,
)

DECIDE_PATH = "/miaopi.v1.ApprovalService/Decide"
EMPTY_PATH = "/bench.v1.Empty/Call"
# (connections -c, concurrent streams per connection -m) swept for each server's peak.
SHAPES = ((1, 16), (4, 4), (16, 1), (4, 16), (8, 32))
RUN_SECONDS = 5.0
WORKERS = 2  # `--workers`: one server process per core of this machine
HALF_RATE_CLIENTS = 4
# p99 over ~5 s is a few dozen requests: twice as many runs as rounds, so the on/off comparison
# rests on more than a handful of tails (the spread is reported beside the medians).
HALF_RATE_RUNS_PER_ROUND = 2


def frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


@dataclass
class H2Result:
    rps: float
    requested: int
    succeeded: int
    failed: int
    p50_ms: float
    p99_ms: float
    seconds: float
    command: str


@dataclass
class Setup:
    root: Path
    token: str
    credentials: Path
    decide_body: Path
    empty_body: Path


def setup(name: str = "rpc") -> Setup:
    """A fresh scratch folder build/bench/<name>: credentials, a window's token, and the
    prepared Decide (and empty) request bodies h2load sends."""
    root = WORK / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    creds = root / "credentials.yaml"
    token = write_credentials(creds, ["GF00012000"])
    req = pb.DecideRequest(
        item_code="GF00012000",
        materials=SENIOR_MATERIALS,
        window=pb.Window(window_id="W-BENCH", operator_id="bench-op"),
    )
    req.facts.update(SENIOR)
    decide_body = root / "decide.grpc"
    decide_body.write_bytes(frame(req.SerializeToString()))
    empty_body = root / "empty.grpc"
    empty_body.write_bytes(frame(b""))
    return Setup(root, token, creds, decide_body, empty_body)


class Server:
    """One server subprocess: start, wait for SERVING, preflight, stop, verify."""

    def __init__(self, kind: str, s: Setup, tag: str) -> None:
        self.kind, self.s = kind, s
        self.dir = s.root / f"{kind}-{tag}"
        self.dir.mkdir(parents=True)
        self.stats = self.dir / "stats.json"
        self.expected = 0  # requests that must have been answered OK
        self.proc: Proc | None = None
        self.wrapped = False
        self.port = 0

    @property
    def path(self) -> str:
        return EMPTY_PATH if self.kind == "empty" else DECIDE_PATH

    @property
    def body(self) -> Path:
        return self.s.empty_body if self.kind == "empty" else self.s.decide_body

    @property
    def headers(self) -> list[str]:
        h = ["content-type: application/grpc", "te: trailers"]
        if self.kind != "empty":
            h.append(f"authorization: Bearer {self.s.token}")
        return h

    def command(self) -> list[str]:
        if self.kind == "empty":
            return [
                PY,
                "-m",
                "tests.bench.empty_server",
                "--port-file",
                str(self.dir / "port"),
                "--stats-file",
                str(self.stats),
            ]
        flags = [
            "--listen",
            "127.0.0.1:0",
            "--rulesets",
            str(RULESETS),
            "--state-dir",
            str(self.dir / "state"),
            "--credentials",
            str(self.s.credentials),
            "--rate",
            "0",
            "--watch",
            "0",
            "--log-level",
            "info",
            "--log-format",
            "json",
        ]
        if self.kind == "miaopi":
            return [PY, "-m", "miaopi_server.app", *flags]
        if self.kind == "workers":
            return [PY, "-m", "miaopi_server.app", *flags, "--workers", str(WORKERS)]
        extra = ["--no-record"] if self.kind == "unrecorded" else []
        return [
            PY,
            "-m",
            "tests.bench.bench_server",
            "--stats-file",
            str(self.stats),
            *extra,
            "--",
            *flags,
        ]

    def start(self, wrap: list[str] | None = None) -> None:
        self.wrapped = bool(wrap)
        self.proc = start([*(wrap or []), *self.command()], self.dir / "server.log")
        if self.kind == "empty":
            port_file = self.dir / "port"
            wait_for(
                lambda: port_file.exists() and port_file.read_text(), 30, "empty server", self.proc
            )
            self.port = int(port_file.read_text())
        else:
            self.port = int(wait_for(self._started_port, 60, f"{self.kind} server", self.proc))
            self._wait_serving()
        self._preflight()

    @property
    def pid(self) -> int:
        """The server's own pid (a wrapper such as strace starts it as its child)."""
        assert self.proc is not None
        pid = self.proc.pid
        if not self.wrapped:
            return pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        kids = children.read_text().split() if children.exists() else []
        return int(kids[0]) if kids else pid

    def _started_port(self) -> int | None:
        for line in (self.dir / "server.log").read_text(errors="replace").splitlines():
            if '"server.started"' in line:
                return int(json.loads(line)["listen"].rsplit(":", 1)[1])
        return None

    def _wait_serving(self) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            ok = health_pb2.HealthCheckResponse.SERVING

            def serving() -> bool:
                try:
                    req = health_pb2.HealthCheckRequest(service="miaopi.v1.ApprovalService")
                    return stub.Check(req, timeout=2).status == ok
                except grpc.RpcError:
                    return False

            wait_for(serving, 30, "health SERVING", self.proc)

    def _preflight(self) -> None:
        """The exact bytes h2load sends, through a real gRPC client: must be OK (and APPROVE)."""
        message = self.body.read_bytes()[5:]
        meta = [] if self.kind == "empty" else [("authorization", f"Bearer {self.s.token}")]
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as ch:
            call = ch.unary_unary(self.path)  # bytes in, bytes out
            raw = call(message, metadata=meta, timeout=10)
        if self.kind != "empty":
            d = pb.DecideResponse.FromString(raw).decision
            amount = d.outputs.fields["monthly_amount"].number_value
            assert d.outcome == pb.OUTCOME_APPROVE and amount == 30, d
            assert (d.receipt.seq > 0) == (self.kind != "unrecorded"), d.receipt
        self.expected += 1

    def h2load(self, clients: int, streams: int, n: int, rps: float = 0, tag: str = "") -> H2Result:
        assert self.proc is not None
        log_file = self.dir / f"h2load-{tag or f'c{clients}m{streams}'}-{time.time_ns()}.tsv"
        cmd = [
            "h2load",
            "-n",
            str(n),
            "-c",
            str(clients),
            "-m",
            str(streams),
            "-t",
            "1",
            "-d",
            str(self.body),
            "--log-file",
            str(log_file),
        ]
        if rps:
            cmd += ["--rps", f"{rps:.2f}"]
        for h in self.headers:
            cmd += ["-H", h]
        cmd.append(f"http://127.0.0.1:{self.port}{self.path}")
        # -n, never -D: a timed run ends by cancelling in-flight streams (see BENCHMARKS.md).
        timeout = max(120.0, n / 50)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
        res = parse_h2load(out, log_file, cmd)
        if res.failed or res.succeeded != n:
            raise RuntimeError(
                f"h2load: {res.failed} failed, {res.succeeded}/{n} succeeded:\n{out}"
            )
        self.expected += res.succeeded
        return res

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far (all its threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.popen.poll() is None:
            if self.wrapped:
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGTERM)
            self.proc.stop(30)

    def stop_and_verify(self) -> dict[str, Any]:
        assert self.proc is not None
        if self.proc.popen.pid != self.pid:  # wrapped (strace): stop the server, the tracer follows
            os.kill(self.pid, signal.SIGTERM)
            self.proc.popen.wait(60)
        rc = self.proc.stop(60)
        info: dict[str, Any] = {
            "kind": self.kind,
            "run": self.dir.name,
            "expected_ok": self.expected,
            "exit": rc,
        }
        events = 0
        if self.kind in ("miaopi", "workers", "counted"):
            db = self.dir / "state" / "audit.sqlite3"
            with sqlite3.connect(db) as conn:
                # Decisions only: the trail also holds the start's publication (an event).
                total, approve = conn.execute(
                    "SELECT count(*), sum(outcome = 'APPROVE') FROM records WHERE kind = 'decision'"
                ).fetchone()
                (events,) = conn.execute(
                    "SELECT count(*) FROM records WHERE kind != 'decision'"
                ).fetchone()
            info.update(audit_records=total, audit_approve=approve, audit_events=events)
            if total != self.expected or approve != self.expected:
                raise RuntimeError(
                    f"{self.kind}: {self.expected} requests answered 200 but the audit trail "
                    f"holds {total} records ({approve} APPROVE): some got grpc-status != 0"
                )
        if self.kind not in ("miaopi", "workers"):
            stats = json.loads(self.stats.read_text())
            info.update(stats)
            answered = {
                "empty": stats.get("calls"),
                "counted": stats.get("records_written", 0) - events,
                "unrecorded": stats.get("unrecorded_decisions"),
            }[self.kind]
            if answered != self.expected:
                raise RuntimeError(
                    f"{self.kind}: server answered {answered}, expected {self.expected}"
                )
        return info


_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx")


def parse_h2load(out: str, log_file: Path, cmd: list[str]) -> H2Result:
    fin, req, status = _FINISHED.search(out), _REQUESTS.search(out), _STATUS.search(out)
    if not (fin and req and status):
        raise RuntimeError(f"cannot parse h2load output:\n{out}")
    seconds = float(fin.group(1)) / (1000 if fin.group(2) == "ms" else 1)
    succeeded = min(int(req.group(2)), int(status.group(1)))  # 2xx and counted as succeeded
    lat = sorted(
        int(cols[2]) / 1000
        for cols in (line.split("\t") for line in log_file.read_text().splitlines())
        if len(cols) >= 3 and cols[1] == "200"
    )
    shown = shlex.join(
        "authorization: Bearer $TOKEN" if c.startswith("authorization:") else _rel(c) for c in cmd
    ).replace("'authorization: Bearer $TOKEN'", '"authorization: Bearer $TOKEN"')
    return H2Result(
        rps=float(fin.group(3)),
        requested=int(req.group(1)),
        succeeded=succeeded,
        failed=int(req.group(3)) + int(req.group(1)) - succeeded,
        p50_ms=_pct(lat, 50),
        p99_ms=_pct(lat, 99),
        seconds=seconds,
        command=shown,
    )


def _rel(arg: str) -> str:
    return arg.replace(str(ROOT) + "/", "")


def _pct(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return float("nan")
    k = min(len(sorted_ms) - 1, max(0, round(p / 100 * len(sorted_ms) + 0.5) - 1))
    return sorted_ms[k]  # nearest-rank percentile


def _n_for(rps: float, seconds: float = RUN_SECONDS) -> int:
    return int(min(60000, max(1000, rps * seconds)))


def run(rounds: int = 5) -> dict[str, Any]:
    s = setup()
    kinds = ("empty", "miaopi", "workers", "counted", "unrecorded")
    results: dict[str, Any] = {"shapes": {}, "rounds": [], "checks": []}

    # 1. Sweep the load shapes once per server; each server then runs at its best shape.
    best: dict[str, tuple[int, int]] = {}
    estimate: dict[str, float] = {}
    for kind in kinds:
        with Server(kind, s, "sweep") as srv:
            srv.start()
            estimate[kind] = srv.h2load(4, 4, 500, tag="warmup").rps
            sweep = {}
            for c, m in SHAPES:
                r = srv.h2load(c, m, _n_for(estimate[kind], 3))
                estimate[kind] = max(estimate[kind], r.rps)
                sweep[f"c{c}m{m}"] = r.rps
            results["checks"].append(srv.stop_and_verify())
        results["shapes"][kind] = sweep
        c, m = max(SHAPES, key=lambda cm: sweep[f"c{cm[0]}m{cm[1]}"])
        best[kind] = (c, m)
        log(f"rpc sweep {kind}: {sweep} -> c{c} m{m}")

    # 2. Rounds: every server in turn (order rotated), fresh process and audit DB each time.
    for i in range(rounds):
        order = kinds[i % len(kinds) :] + kinds[: i % len(kinds)]
        row: dict[str, Any] = {}
        for kind in order:
            with Server(kind, s, f"r{i}") as srv:
                srv.start()
                c, m = best[kind]
                srv.h2load(c, m, 300, tag="warmup")
                before = srv.cpu_seconds()
                r = srv.h2load(c, m, _n_for(estimate[kind]))
                used = srv.cpu_seconds() - before
                row[kind] = {
                    "rps": r.rps,
                    "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms,
                    "n": r.requested,
                    "seconds": r.seconds,
                    "command": r.command,
                    # The server's CPU (all its threads, user + system) per request: unlike
                    # req/s, hardly moved by what else runs on the shared machine.
                    "cpu_us_per_request": used / r.requested * 1e6 if kind != "workers" else None,
                }
                results["checks"].append(srv.stop_and_verify())
        row["ratio_decide_empty"] = row["miaopi"]["rps"] / row["empty"]["rps"]
        row["ratio_workers_empty"] = row["workers"]["rps"] / row["empty"]["rps"]
        row["ratio_unrecorded_empty"] = row["unrecorded"]["rps"] / row["empty"]["rps"]
        row["ratio_audit_on_off"] = row["counted"]["rps"] / row["unrecorded"]["rps"]
        row["cpu_ratio_empty_decide"] = (
            row["empty"]["cpu_us_per_request"] / row["miaopi"]["cpu_us_per_request"]
        )
        results["rounds"].append(row)
        log(
            f"rpc round {i + 1}/{rounds}: "
            + ", ".join(f"{k} {row[k]['rps']:.0f}/s" for k in kinds)
            + f", Decide/empty {row['ratio_decide_empty']:.3f}"
            + f" ({WORKERS} workers {row['ratio_workers_empty']:.3f})"
        )

    peak = median([r["miaopi"]["rps"] for r in results["rounds"]])
    workers_peak = median([r["workers"]["rps"] for r in results["rounds"]])

    # 3. Latency at half the peak rate: h2load --rps, 4 connections. The product server
    #    (audit on) and, for comparison at the same rate, the audit-off server, run after run.
    half = peak / 2
    # The --workers server runs at half of its own peak.
    rate = {"miaopi": half, "unrecorded": half, "workers": workers_peak / 2}
    half_runs: dict[str, list[dict[str, Any]]] = {k: [] for k in rate}
    results["fsync_probe_before_half_rate"] = fsync_probe(s.root)
    with (
        Server("miaopi", s, "half") as on,
        Server("unrecorded", s, "half") as off,
        Server("workers", s, "half") as wk,
    ):
        for srv in (on, off, wk):
            srv.start()
            srv.h2load(*best[srv.kind], 300, tag="warmup")
        for i in range(HALF_RATE_RUNS_PER_ROUND * rounds):
            # audit on and off take turns at going first (the machine drifts within a round)
            for srv in (on, off, wk) if i % 2 == 0 else (off, on, wk):
                each = rate[srv.kind] / HALF_RATE_CLIENTS
                r = srv.h2load(HALF_RATE_CLIENTS, 8, _n_for(rate[srv.kind]), rps=each, tag="half")
                half_runs[srv.kind].append(
                    {
                        "rps": r.rps,
                        "p50_ms": r.p50_ms,
                        "p99_ms": r.p99_ms,
                        "n": r.requested,
                        "command": r.command,
                    }
                )
        for srv in (on, off, wk):
            results["checks"].append(srv.stop_and_verify())
    results["fsync_probe_after_half_rate"] = fsync_probe(s.root)
    results["half_rate"] = {
        "target_rps": half,
        "runs": half_runs["miaopi"],
        "audit_off_runs": half_runs["unrecorded"],
        "workers_target_rps": rate["workers"],
        "workers_runs": half_runs["workers"],
    }
    log(
        f"rpc half rate {half:.0f}/s: p99 audit on "
        f"{[round(r['p99_ms'], 2) for r in half_runs['miaopi']]} ms, audit off "
        f"{[round(r['p99_ms'], 2) for r in half_runs['unrecorded']]} ms, {WORKERS} workers at "
        f"{rate['workers']:.0f}/s {[round(r['p99_ms'], 2) for r in half_runs['workers']]} ms"
    )

    # 4. fsyncs under load, counted by strace (a separate run: ptrace slows the server, so its
    #    throughput is not used anywhere).
    results["strace"] = _strace_run(s, best["counted"], estimate["counted"])

    # 5. Profile of the Decide path under peak load (py-spy, GIL holder).
    results["profile"] = _profile_run(s, best["miaopi"], estimate["miaopi"])
    return results


def _strace_run(s: Setup, shape: tuple[int, int], est: float) -> dict[str, Any]:
    strace = shutil.which("strace")
    if not strace:
        return {"skipped": "strace not installed"}
    with Server("counted", s, "strace") as srv:
        out = srv.dir / "strace.txt"
        srv.start(
            [strace, "-f", "-c", "--seccomp-bpf", "-e", "trace=fsync,fdatasync", "-o", str(out)]
        )
        srv.h2load(*shape, 300, tag="warmup")
        r = srv.h2load(*shape, _n_for(est * 0.7))
        info = srv.stop_and_verify()
    wait_for(lambda: out.exists() and out.stat().st_size > 0, 30, "strace summary")
    calls, usecs = {}, {}
    for line in out.read_text().splitlines():
        cols = line.split()
        if cols and cols[-1] in ("fsync", "fdatasync"):
            # % time, seconds, usecs/call, calls, [errors,] syscall
            calls[cols[-1]] = int(cols[3])
            usecs[cols[-1]] = int(cols[2])
    syncs = sum(calls.values())
    return {
        "requests": r.requested,
        "rps_under_strace": r.rps,
        "records": info["records_written"],
        "group_commits": info["batches"],
        "fsync_calls": calls,
        "fsync_usecs_per_call": usecs,
        "records_per_fsync": info["records_written"] / syncs if syncs else None,
        "fsyncs_per_commit": syncs / info["batches"] if info["batches"] else None,
        "records_per_commit": info["records_written"] / info["batches"],
    }


def _profile_run(s: Setup, shape: tuple[int, int], est: float) -> dict[str, Any]:
    with Server("miaopi", s, "profile") as srv:
        srv.start()
        srv.h2load(*shape, 300, tag="warmup")
        cmd = [
            "h2load",
            "-n",
            str(_n_for(est, 14)),
            "-c",
            str(shape[0]),
            "-m",
            str(shape[1]),
            "-t",
            "1",
            "-d",
            str(srv.body),
        ]
        for h in srv.headers:
            cmd += ["-H", h]
        cmd.append(f"http://127.0.0.1:{srv.port}{srv.path}")
        load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(1.5)
            prof = profiles.py_spy(
                srv.pid, 8, srv.dir / "py-spy.txt", categories=profiles.DECIDE_CATEGORIES
            )
            out, _ = load.communicate(timeout=600)
        finally:
            if load.poll() is None:
                load.kill()
        ok = re.search(r"(\d+) succeeded", out)
        srv.expected += int(ok.group(1)) if ok else 0
        srv.stop_and_verify()
    return prof
