"""`make drill`: fail over the shared audit database under load, and prove nothing
acknowledged was lost (not part of `make test`; about a minute, bounded at three).

On loopback, as the unprivileged postgres user: a PostgreSQL primary and a synchronous
streaming standby (tests/drill/replication.py), and two miaopi nodes on the primary. Callers
on both nodes send decisions and keep every acknowledged decision id and receipt. Mid-burst
the primary is killed (SIGKILL, every process of it), the standby is promoted, and the burst
goes on. Then: every acknowledged decision is in the promoted database with the receipt's
record hash and seq, seq has no duplicates or gaps, and `miaopi audit verify` (through each
node's VerifyAuditTrail) checks the whole trail.

The nodes are not restarted: their DSN names both hosts with target_session_attrs=read-write
(libpq's multi-host connection string). While only a standby is left, no connection is
accepted as read-write and the nodes answer UNAVAILABLE (fail closed); once it is promoted,
their pools' next connections land on it. A caller whose call failed retries the same
request_id, as a window does, so a commit whose answer was lost is found, not made twice.

    .venv/bin/python -m tests.drill.failover      # exit 0 when every check passed
"""

from __future__ import annotations

import collections
import itertools
import json
import secrets
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg
import yaml

from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_server.audit import seal
from miaopi_server.audit.postgres.conn import PgConn
from miaopi_server.audit.postgres.migrate import migrate
from miaopi_server.edge.auth import hash_token
from tests.drill.replication import STANDBY_NAME, Primary, Standby
from tests.support import RULESETS, SENIOR, SENIOR_MATERIALS, decide_request

CALLERS = 8  # threads, alternating between the two nodes
BEFORE_KILL = 400  # decisions acknowledged before the primary is killed
AFTER_PROMOTE = 400  # and after the standby is promoted
DETECTION_SECONDS = 1.0  # between the kill and the promotion, as a watchdog would take
BOUND_SECONDS = 180.0  # the whole drill, set-up included
RETRY_PAUSE = 0.05


def log(msg: str) -> None:
    print(f"[drill {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Node:
    """`python -m miaopi_server.app` on the shared store, its log in a file (the pool's
    warnings while the database is gone are not JSON)."""

    def __init__(self, name: str, root: Path, dsn: str, key: Path, creds: Path) -> None:
        self.name = name
        state = root / name
        state.mkdir()
        self.log_path = root / f"{name}.log"
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "miaopi_server.app", "--listen", "127.0.0.1:0",
                 "--rulesets", str(RULESETS), "--state-dir", str(state), "--log-format", "json",
                 "--store", dsn, "--node-id", name, "--seal-key", str(key),
                 "--credentials", str(creds), "--watch", "0", "--rate", "0",
                 "--alert-interval", "0"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.target = self._wait_started()
        self.channel = grpc.insecure_channel(self.target)
        self.approval = pb_grpc.ApprovalServiceStub(self.channel)

    def _wait_started(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if '"server.started"' in line:
                    return str(json.loads(line)["listen"])
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.name} exited; see {self.log_path}")
            time.sleep(0.05)
        raise RuntimeError(f"node {self.name} did not start in 60 s; see {self.log_path}")

    def stop(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Ack:
    request_id: str
    decision_id: str
    record_hash: str
    seq: int
    node: str
    at: float  # time.monotonic() when the answer arrived
    attempts: int


@dataclass
class Burst:
    """Callers deciding until stopped; every acknowledged decision is kept."""

    nodes: list[Node]
    window_token: str
    acks: list[Ack] = field(default_factory=list)
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    unacknowledged: list[str] = field(default_factory=list)  # abandoned at the stop
    stop: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._caller, args=(i,)) for i in range(CALLERS)]
        for t in threads:
            t.start()
        return threads

    def _caller(self, i: int) -> None:
        node = self.nodes[i % len(self.nodes)]
        meta = [("authorization", f"Bearer {self.window_token}")]
        for k in itertools.count():
            if self.stop.is_set():
                return
            rid = f"drill-{i}-{k}"
            req = decide_request("GF00012000", SENIOR, SENIOR_MATERIALS, request_id=rid)
            for attempt in itertools.count(1):
                try:
                    d = node.approval.Decide(req, metadata=meta, timeout=15).decision
                except grpc.RpcError as exc:
                    with self.changed:
                        self.failures[exc.code().name] += 1
                    if self.stop.is_set():
                        with self.changed:
                            self.unacknowledged.append(rid)
                        return
                    time.sleep(RETRY_PAUSE)
                    continue  # the same request_id again, as a window retries
                r = d.receipt
                ack = Ack(rid, d.decision_id, r.record_hash, r.seq, r.node_id,
                          time.monotonic(), attempt)  # fmt: skip
                with self.changed:
                    self.acks.append(ack)
                    self.changed.notify_all()
                break

    def wait_acks(self, since: float, count: int, deadline: float) -> int:
        """Until `count` decisions were acknowledged after `since` (or the deadline)."""

        def enough() -> bool:
            return sum(a.at > since for a in self.acks) >= count

        with self.changed:
            self.changed.wait_for(enough, max(0.0, deadline - time.monotonic()))
            return sum(a.at > since for a in self.acks)


def write_credentials(path: Path) -> tuple[str, str]:
    """A window and a supervisor (who may verify the trail); their bearer tokens."""
    window, supervisor = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    principals = [
        {"id": "drill-window", "role": "window", "window_id": "W-DRILL-01",
         "jurisdiction": "440605", "items": ["*"], "token_sha256": hash_token(window)},
        {"id": "drill-supervisor", "role": "supervisor", "jurisdiction": "440605",
         "token_sha256": hash_token(supervisor)},
    ]  # fmt: skip
    path.write_text(yaml.safe_dump({"principals": principals}), "utf-8")
    path.chmod(0o600)
    return window, supervisor


def audit_verify(node: Node, token: str) -> tuple[int, str]:
    """`miaopi audit verify` against the node: VerifyAuditTrail over the whole trail."""
    done = subprocess.run(
        [sys.executable, "-m", "miaopi_client.cli", "--target", node.target, f"--token={token}",
         "audit", "verify"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, (done.stdout + done.stderr).strip()


def check(
    promoted_dsn: str, burst: Burst, nodes: list[Node], supervisor: str
) -> tuple[int, list[str], list[str]]:
    """Every check the drill makes: how many acknowledged decisions were found with their
    receipt's hash and seq, what `miaopi audit verify` said through each node, and the
    failures (empty when all passed)."""
    problems = []
    with psycopg.connect(promoted_dsn, autocommit=True) as conn:
        stored = {
            d: (h, s)
            for d, h, s in conn.execute("SELECT decision_id, hash, seq FROM records").fetchall()
        }
        seqs = [s for (s,) in conn.execute("SELECT seq FROM records ORDER BY seq").fetchall()]
        dup_requests = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM records WHERE request_id IS NOT NULL"
            " GROUP BY window_id, request_id HAVING count(*) > 1) AS d"
        ).fetchone()
    missing = [a for a in burst.acks if a.decision_id not in stored]
    differing = [
        a for a in burst.acks
        if a.decision_id in stored and stored[a.decision_id] != (a.record_hash, a.seq)
    ]  # fmt: skip
    if missing:
        problems.append(f"{len(missing)} acknowledged decisions missing, e.g. {missing[:3]}")
    if differing:
        problems.append(f"{len(differing)} decisions with another hash or seq: {differing[:3]}")
    if len(set(seqs)) != len(seqs) or seqs != list(range(1, len(seqs) + 1)):
        problems.append("seq repeats or has gaps in the promoted database")
    acked_seqs = [a.seq for a in burst.acks]
    if len(set(acked_seqs)) != len(acked_seqs):
        problems.append("two acknowledged decisions share a seq")
    if len({a.request_id for a in burst.acks}) != len(burst.acks):
        problems.append("a request_id was acknowledged twice")
    if dup_requests and dup_requests[0]:
        problems.append(f"{dup_requests[0]} request_ids recorded more than once")
    verified = []
    for node in nodes:
        code, out = audit_verify(node, supervisor)
        verified.append(f"{node.name}: exit {code}, {out}")
        if code != 0 or "audit trail OK" not in out:
            problems.append(f"audit verify through {node.name} failed: {out}")
    return len(burst.acks) - len(missing) - len(differing), verified, problems


def drill(root: Path) -> int:
    t0 = time.monotonic()
    deadline = t0 + BOUND_SECONDS
    primary = Primary()
    standby: Standby | None = None
    nodes: list[Node] = []
    killed = False
    try:
        standby = Standby(primary)
        sync = primary.wait_sync(deadline - time.monotonic())
        log(f"primary 127.0.0.1:{primary.port}, standby 127.0.0.1:{standby.port} {sync}")
        dsn1 = primary.database()
        with psycopg.connect(dsn1, autocommit=True) as raw:
            migrate(PgConn(raw), dsn1)  # replicated synchronously like any commit
        db = dsn1.rsplit("/", 1)[1]
        both = (
            f"postgresql://{primary.user}@127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
            f"/{db}?target_session_attrs=read-write"
        )
        log(f"nodes' DSN: {both}")
        key = root / "seal_ed25519.pem"  # the district's one sealing key, on both nodes
        seal.load_or_create(key)
        window, supervisor = write_credentials(root / "credentials.yaml")
        nodes = [Node(n, root, both, key, root / "credentials.yaml") for n in ("n1", "n2")]
        set_up = time.monotonic() - t0
        log(f"set up in {set_up:.1f} s; burst: {CALLERS} callers on 2 nodes")

        burst = Burst(nodes, window)
        threads = burst.start()
        started = time.monotonic()
        burst.wait_acks(0.0, BEFORE_KILL, deadline - 120)
        pids = primary.kill()
        t_kill = time.monotonic()
        killed = True
        log(f"primary killed (SIGKILL to {len(pids)} processes) after "
            f"{len(burst.acks)} acknowledged decisions")  # fmt: skip
        time.sleep(DETECTION_SECONDS)
        # The hot standby is readable: what it holds is what the promoted database starts with.
        (held,) = standby.query(standby.dsn(db), "SELECT coalesce(max(seq), 0) FROM records")[0]
        t_promote = time.monotonic()
        standby.promote()
        t_promoted = time.monotonic()
        log(f"standby promoted in {t_promoted - t_promote:.2f} s")
        burst.wait_acks(t_promoted, AFTER_PROMOTE, deadline - 30)
        burst.stop.set()
        for t in threads:
            t.join(30)
        ended = time.monotonic()

        acks = burst.acks
        before = [a for a in acks if a.at <= t_kill]
        during = [a for a in acks if t_kill < a.at <= t_promoted]
        after = [a for a in acks if a.at > t_promoted]
        first_after = min((a.at for a in acks if a.at > t_kill), default=float("nan"))
        retried = [a for a in acks if a.attempts > 1]
        promoted_dsn = standby.dsn(db)
        rows, heads = standby.query(
            promoted_dsn, "SELECT (SELECT count(*) FROM records), (SELECT count(*) FROM tree_heads)"
        )[0]
        found, verified, problems = check(promoted_dsn, burst, nodes, supervisor)
        if len(before) < BEFORE_KILL or len(after) < AFTER_PROMOTE:
            problems.append(
                f"the burst fell short: {len(before)} acknowledged before the kill (want "
                f"{BEFORE_KILL}), {len(after)} after promotion (want {AFTER_PROMOTE})"
            )
        # A retry answered with a seq the standby already held: committed before the kill,
        # its answer lost with the primary, found by the same request_id (not made twice).
        found_by_retry = [a for a in retried if a.seq <= held]
        total = time.monotonic() - t0

        print()
        print("=== failover drill: summary ===")
        print(f"primary + synchronous standby ({STANDBY_NAME}, synchronous_commit=on), "
              f"2 nodes, {CALLERS} callers")  # fmt: skip
        print(
            f"acknowledged before the kill:       {len(before)} "
            f"in {t_kill - started:.1f} s ({len(before) / (t_kill - started):.0f}/s)"
        )
        print(
            f"acknowledged kill -> promoted:      {len(during)} "
            f"({t_promoted - t_kill:.2f} s: {DETECTION_SECONDS:.1f} s of detection, then "
            f"pg_ctl promote took {t_promoted - t_promote:.2f} s)"
        )
        print(f"acknowledged after promotion:       {len(after)} in {ended - t_promoted:.1f} s")
        print(
            f"no decision acknowledged for:       {first_after - t_kill:.2f} s after the kill "
            f"({first_after - t_promoted:.2f} s after promotion)"
        )
        print(f"standby held at promotion:          {held} records (seq 1..{held})")
        print(
            f"failed calls (retried, same id):    {dict(burst.failures) or 0}; "
            f"{len(retried)} decisions needed a retry, {len(found_by_retry)} of them "
            "committed before the kill and found by the retry"
        )
        print(f"abandoned unacknowledged at stop:   {len(burst.unacknowledged)}")
        print(
            f"acknowledged in total:              {len(acks)}; found in the promoted "
            f"database with the same record hash and seq: {found}"
        )
        print(
            f"records in the promoted database:   {rows} in {heads} commits "
            f"({rows / max(heads, 1):.1f} records per commit)"
        )
        print(f"miaopi audit verify --target (each node): {'; '.join(verified)}")
        print(f"set-up {set_up:.1f} s, drill {total:.1f} s (bound {BOUND_SECONDS:.0f} s)")
        if problems:
            print("RESULT: FAILED")
            for p in problems:
                print(f"  - {p}")
            return 1
        print("RESULT: every acknowledged decision survived the failover; the log verifies")
        return 0
    finally:
        for node in nodes:
            node.stop()
        if standby is not None:
            standby.close()
        if killed:
            primary.discard()
        else:
            primary.close()


def main() -> int:
    root = Path(__file__).resolve().parents[2] / "build" / "drill"  # the nodes' logs stay here
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return drill(root)


if __name__ == "__main__":
    sys.exit(main())
