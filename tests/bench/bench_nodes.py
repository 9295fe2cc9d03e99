"""Many nodes (part 6): two nodes on one PostgreSQL versus one node on SQLite, same run, same load.

Three set-ups, each round in turn (order rotated), fresh processes and a fresh database each:
- sqlite-1: one `python -m miaopi_server.app` exactly as bench_rpc's "miaopi" server
  (authentication on, --rate 0, --watch 0, one `decision` log line per call, audit on: SQLite
  WAL, synchronous=FULL, group commit);
- pg-1:     the same command with `--store postgresql://...` (one database, fsync=on), to
  separate what the backend costs from what a second node adds;
- pg-2:     two such nodes (`--node-id n1/n2`, one sealing key) on one database, the load
  split between them;
- pg-2-sync: the same two nodes on a primary with a synchronous streaming standby
  (synchronous_commit=on, as docs/DEPLOY.md deploys it and `make drill` fails over): every
  commit also waits for the standby to flush it.
The load is the same for all three: h2load, 4 connections x 8 streams in total (pg-2: two
h2load processes at once, 2 connections x 8 streams each, one per node), the same prepared
Decide (GF00012000, APPROVE) as part 1, N requests in total. Throughput = N / the longer
h2load's time; p50/p99 over every request's latency (both h2load logs for pg-2); records per
commit = records / signed tree heads added during the measured run (one head per commit).
CPU seconds of each part (nodes, PostgreSQL's processes, h2load) over the measured run show
where the time goes, from which the report explains how it would scale.
Every run is checked: the trail holds exactly one APPROVE record per request answered.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.audit import seal
from tests.drill.replication import Primary, Standby
from tests.postgres import PostgresServer, migrated_database

from .bench_rpc import DECIDE_PATH, setup
from .common import PY, RULESETS, Proc, log, median, start, wait_for

SETUPS = ("sqlite-1", "pg-1", "pg-2", "pg-2-sync")
CONNECTIONS, STREAMS = 4, 8  # in total, whatever the number of nodes
REQUESTS = 3000  # per measured run, in total
WARMUP = 300  # per node, before the measured run
ROUNDS = 3


@dataclass
class Load:
    """What h2load measured, all its processes together."""

    requests: int
    seconds: float
    latencies_ms: list[float]
    h2load_cpu_s: float


def _pct(sorted_ms: list[float], p: float) -> float:
    k = min(len(sorted_ms) - 1, max(0, round(p / 100 * len(sorted_ms) + 0.5) - 1))
    return sorted_ms[k]  # nearest rank, as part 1


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cluster_pids(pg: PostgresServer) -> list[int]:
    postmaster = int((pg.data / "postmaster.pid").read_text().splitlines()[0])
    kids = []
    for task in Path(f"/proc/{postmaster}/task").iterdir():
        kids += [int(p) for p in (task / "children").read_text().split()]
    return [postmaster, *kids]


class Node:
    """One miaopi server process (bench_rpc's flags), on SQLite or on the shared store."""

    def __init__(self, run_dir: Path, name: str, creds: Path, store: list[str]) -> None:
        self.dir = run_dir / name
        self.dir.mkdir(parents=True)
        cmd = [
            PY, "-m", "miaopi_server.app", "--listen", "127.0.0.1:0",
            "--rulesets", str(RULESETS), "--state-dir", str(self.dir / "state"),
            "--credentials", str(creds), "--rate", "0", "--watch", "0",
            "--log-level", "info", "--log-format", "json", "--node-id", name, *store,
        ]  # fmt: skip
        self.proc: Proc = start(cmd, self.dir / "server.log")
        self.port = 0

    def wait_started(self) -> None:
        def port() -> int | None:
            for line in (self.dir / "server.log").read_text(errors="replace").splitlines():
                if '"server.started"' in line:
                    return int(json.loads(line)["listen"].rsplit(":", 1)[1])
            return None

        self.port = int(wait_for(port, 60, f"node {self.dir.name}", self.proc))

    def preflight(self, token: str, body: Path) -> None:
        """The exact bytes h2load sends, through a real gRPC client: OK, APPROVE, recorded."""
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as ch:
            raw = ch.unary_unary(DECIDE_PATH)(
                body.read_bytes()[5:], metadata=[("authorization", f"Bearer {token}")], timeout=30
            )
        d = pb.DecideResponse.FromString(raw).decision
        assert d.outcome == pb.OUTCOME_APPROVE and d.receipt.seq > 0, d


def _h2load(port: int, token: str, body: Path, n: int, c: int, log_file: Path) -> list[str]:
    return [
        "h2load", "-n", str(n), "-c", str(c), "-m", str(STREAMS), "-t", "1", "-d", str(body),
        "--log-file", str(log_file), "-H", "content-type: application/grpc",
        "-H", "te: trailers", "-H", f"authorization: Bearer {token}",
        f"http://127.0.0.1:{port}{DECIDE_PATH}",
    ]  # fmt: skip


def drive(nodes: list[Node], token: str, body: Path, n: int, tag: str) -> Load:
    """n requests in total, CONNECTIONS x STREAMS in total, split evenly over the nodes,
    every h2load started at once; each must report every request succeeded."""
    share, conns = n // len(nodes), CONNECTIONS // len(nodes)
    logs = [node.dir / f"h2load-{tag}.tsv" for node in nodes]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [
        subprocess.Popen(
            _h2load(node.port, token, body, share, conns, lf),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node, lf in zip(nodes, logs, strict=True)
    ]
    seconds = 0.0
    for p in procs:
        out, _ = p.communicate(timeout=600)
        done = [line for line in out.splitlines() if line.startswith("requests:")]
        if not done or f"{share} succeeded, 0 failed" not in done[0]:
            raise RuntimeError(f"h2load: not every request succeeded:\n{out}")
        fin = next(line for line in out.splitlines() if line.startswith("finished in"))
        value = fin.split()[2].rstrip(",")
        seconds = max(seconds, float(value[:-2]) / 1000 if value.endswith("ms") else
                      float(value[:-1]))  # fmt: skip
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    lat = sorted(
        int(cols[2]) / 1000
        for lf in logs
        for cols in (line.split("\t") for line in lf.read_text().splitlines())
        if len(cols) >= 3 and cols[1] == "200"
    )
    if len(lat) != share * len(nodes):
        raise RuntimeError(f"h2load logs hold {len(lat)} answers, expected {share * len(nodes)}")
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return Load(share * len(nodes), seconds, lat, cpu)


class Trail:
    """Counts in the audit database: decision records, APPROVE records, signed tree heads
    (commits). Decisions only: a fresh trail also holds its start's ruleset_published event."""

    SQL = (
        "SELECT (SELECT count(*) FROM records WHERE kind = 'decision'), "
        "(SELECT count(*) FROM records WHERE outcome = 'APPROVE'), "
        "(SELECT count(*) FROM tree_heads)"
    )

    def __init__(self, sqlite_file: Path | None = None, dsn: str = "") -> None:
        self.sqlite_file, self.dsn = sqlite_file, dsn

    def counts(self) -> tuple[int, int, int]:
        if self.sqlite_file is not None:  # WAL: a reader beside the running writer
            with sqlite3.connect(f"file:{self.sqlite_file}?mode=ro", uri=True) as conn:
                row = conn.execute(self.SQL).fetchone()
        else:
            with psycopg.connect(self.dsn, autocommit=True) as pgc:
                row = pgc.execute(self.SQL).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


def one_run(setup: str, clusters: list[PostgresServer], root: Path, creds: Path, token: str,
            body: Path, key: Path, tag: str) -> dict[str, Any]:  # fmt: skip
    """One set-up's run; `clusters` are the PostgreSQL it writes to (the primary first)."""
    run_dir = root / f"{setup}-{tag}"
    dsn = "" if setup == "sqlite-1" else migrated_database(clusters[0])
    count = 1 if setup.endswith("-1") else 2
    store = ["--store", dsn, "--seal-key", str(key)] if dsn else []
    nodes = [Node(run_dir, f"n{i + 1}", creds, store) for i in range(count)]  # started at once
    try:
        # Every node opens the new trail before any writes it: a node whose state directory
        # has no witness refuses a shared trail that already holds signed heads.
        for node in nodes:
            node.wait_started()
        for node in nodes:
            node.preflight(token, body)
        trail = Trail(nodes[0].dir / "state" / "audit.sqlite3" if not dsn else None, dsn)
        drive(nodes, token, body, WARMUP * count, "warmup")
        before = trail.counts()
        pg_pids = [p for c in clusters for p in _cluster_pids(c)] if dsn else []
        node_cpu0 = sum(_cpu_seconds(n.proc.pid) for n in nodes)
        pg_cpu0 = {p: _cpu_seconds(p) for p in pg_pids}
        load = drive(nodes, token, body, REQUESTS, "measured")
        node_cpu = sum(_cpu_seconds(n.proc.pid) for n in nodes) - node_cpu0
        pg_pids = [p for c in clusters for p in _cluster_pids(c)] if dsn else []
        pg_cpu = sum(_cpu_seconds(p) - pg_cpu0.get(p, 0.0) for p in pg_pids)
        after = trail.counts()
    finally:
        for node in nodes:
            node.proc.stop(60)
    expected = count * (1 + WARMUP) + REQUESTS  # preflights, warm-ups, the measured run
    if after[0] != expected or after[1] != expected:
        raise RuntimeError(
            f"{setup}: {expected} requests answered OK but the trail holds {after[0]} records "
            f"({after[1]} APPROVE)"
        )
    records, commits = after[0] - before[0], after[2] - before[2]
    return {
        "rps": load.requests / load.seconds,
        "seconds": load.seconds,
        "requests": load.requests,
        "p50_ms": _pct(load.latencies_ms, 50),
        "p99_ms": _pct(load.latencies_ms, 99),
        "records": records,
        "commits": commits,
        "records_per_commit": records / commits,
        "cpu_seconds": {
            "nodes": round(node_cpu, 2),
            "postgresql": round(pg_cpu, 2),
            "h2load": round(load.h2load_cpu_s, 2),
        },
    }


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    s = setup("nodes")  # part 1's credentials and Decide body, in a folder of its own
    root, creds, token, body = s.root, s.credentials, s.token, s.decide_body
    key = root / "seal_ed25519.pem"  # one sealing key for the nodes on the shared store
    seal.load_or_create(key)
    results: dict[str, Any] = {
        "stamp": {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "cores": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "load": {
            "connections": CONNECTIONS,
            "streams": STREAMS,
            "requests": REQUESTS,
            "warmup_per_node": WARMUP,
        },
        "rounds": [],
    }
    pg = PostgresServer()
    primary = Primary()
    standby = Standby(primary)
    primary.wait_sync(60)
    clusters: dict[str, list[PostgresServer]] = {
        "sqlite-1": [],
        "pg-1": [pg],
        "pg-2": [pg],
        "pg-2-sync": [primary, standby],
    }
    try:
        results["postgresql"] = pg.query(pg.dsn(), "SHOW server_version")[0][0]
        for i in range(rounds):
            order = SETUPS[i % len(SETUPS) :] + SETUPS[: i % len(SETUPS)]
            row = {
                s: one_run(s, clusters[s], root, creds, token, body, key, f"r{i}") for s in order
            }
            results["rounds"].append(row)
            log(
                f"nodes round {i + 1}/{rounds}: "
                + ", ".join(
                    f"{s} {row[s]['rps']:.0f}/s p99 {row[s]['p99_ms']:.1f} ms "
                    f"{row[s]['records_per_commit']:.1f} rec/commit"
                    for s in SETUPS
                )
            )
    finally:
        standby.close()
        primary.close()
        pg.close()
    results["medians"] = medians(results["rounds"])
    results["stamp"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in SETUPS:
        runs = [r[s] for r in rounds]
        per = {f: median([x[f] for x in runs]) for f in
               ("rps", "p50_ms", "p99_ms", "records_per_commit")}  # fmt: skip
        for part in ("nodes", "postgresql", "h2load"):  # CPU milliseconds per decision
            per[f"cpu_ms_per_decision_{part}"] = median(
                [1000 * x["cpu_seconds"][part] / x["requests"] for x in runs]
            )
        per["cores_busy"] = median(
            [sum(x["cpu_seconds"].values()) / x["seconds"] for x in runs]
        )  # of the machine's cores, on average over the run
        per["commits_per_second"] = median([x["commits"] / x["seconds"] for x in runs])
        out[s] = per
    for s in SETUPS[1:]:
        out[f"ratio_{s}_sqlite"] = median([r[s]["rps"] / r["sqlite-1"]["rps"] for r in rounds])
    return out
