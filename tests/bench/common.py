"""Helpers shared by the benchmark modules: paths, medians, the machine stamp, subprocesses."""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RULESETS = ROOT / "rulesets"
WORK = ROOT / "build" / "bench"  # scratch space (git-ignored): logs, generated files
PY = sys.executable
TODAY = dt.date(2026, 11, 23)  # the as-of date for cases without one (ours all carry one)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def rnd(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}") if abs(x) >= 1 else round(x, digits + 2)


def summary(xs: Sequence[float]) -> dict[str, Any]:
    """Median plus every run, so the JSON keeps the raw figures."""
    return {"median": median(xs), "runs": [round(x, 6) for x in xs]}


def env() -> dict[str, str]:
    """Environment for child Python processes: the repo on the path, no bytecode surprises."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH", "")]))
    e.pop("PYTHONBREAKPOINT", None)
    return e


def rss_mb(pid: int | None = None) -> float:
    """Resident set size (VmRSS) in MiB."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return kb / 1024


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def machine() -> dict[str, Any]:
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    load = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "miaopi",
        "grpcio",
        "protobuf",
        "durable_rules",
        "zen-engine",
        "rule-engine",
        "py-spy",
        "psutil",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["h2load"] = tool_version(["h2load", "--version"])
    out["strace"] = tool_version(["strace", "-V"])
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out["git_commit"] = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "status",
                "--porcelain",
                "--",
                "server",
                "clients",
                "rulesets",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        out["git_worktree"] = "modified (server/clients/rulesets)" if dirty.strip() else "clean"
    return out


@dataclass
class Proc:
    """A child process we started; stopped by its own pid, never by name."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


_STARTED: list[Proc] = []


def start(cmd: list[str], log_path: Path, **kw: Any) -> Proc:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    f = log_path.open("wb")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env(), cwd=ROOT, **kw)
    f.close()
    proc = Proc(p, log_path)
    _STARTED.append(proc)
    return proc


@atexit.register
def _stop_leftovers() -> None:
    """Whatever happens, no server we started outlives the benchmark (each by its own pid)."""
    for proc in _STARTED:
        with contextlib.suppress(Exception):
            proc.stop(10)


@contextlib.contextmanager
def running(cmd: list[str], log_path: Path) -> Iterator[Proc]:
    p = start(cmd, log_path)
    try:
        yield p
    finally:
        p.stop()


def wait_for(predicate: Any, timeout: float, what: str, proc: Proc | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(
                f"{what}: process exited with {proc.popen.returncode}; see {proc.log_path}"
            )
        time.sleep(0.01)
    raise TimeoutError(f"{what}: not ready after {timeout}s")


def write_credentials(path: Path, items: list[str]) -> str:
    """A credentials file (0600) with one window principal; returns its bearer token."""
    import hashlib
    import secrets

    import yaml

    token = secrets.token_urlsafe(32)
    principal = {
        "id": "bench-window",
        "role": "window",
        "window_id": "W-BENCH",
        "items": items,
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"principals": [principal]}), encoding="utf-8")
    path.chmod(0o600)
    return token


def fsync_probe(directory: Path, seconds: float = 3.0) -> dict[str, Any]:
    """How the disk under the audit database answers fdatasync right now: 4 KiB appends,
    each followed by fdatasync, for `seconds` (the machine is shared; this is context)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fsync-probe.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    lat: list[float] = []
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            os.write(fd, b"\0" * 4096)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    lat.sort()
    n = len(lat)
    return {
        "calls": n,
        "p50_ms": round(lat[n // 2], 3),
        "p99_ms": round(lat[min(n - 1, int(n * 0.99))], 3),
        "max_ms": round(lat[-1], 3),
        "over_20ms": sum(x > 20 for x in lat),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def which(name: str) -> str | None:
    return shutil.which(name)
