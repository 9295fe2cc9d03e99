"""The Markdown of part 6 (tests/bench/bench_nodes.py): many nodes on PostgreSQL."""

from __future__ import annotations

from typing import Any

WHAT = {
    "sqlite-1": "one node, SQLite (the embedded default; part 1's server)",
    "pg-1": "one node, `--store postgresql://…`",
    "pg-2": "two nodes on one PostgreSQL, the load split between them",
    "pg-2-sync": "two nodes, PostgreSQL primary + synchronous standby (`synchronous_commit=on`)",
}


def _f(x: Any, digits: int = 0) -> str:
    return "n/a" if not isinstance(x, int | float) else f"{x:,.{digits}f}"


def render(n: dict[str, Any]) -> list[str]:
    L: list[str] = []
    a = L.append
    a("## 6. Many nodes: two nodes on PostgreSQL versus one node on SQLite")
    a("")
    if not n:
        a("Not run (`.venv/bin/python -m tests.bench.run --only nodes`).")
        a("")
        return L
    if "error" in n:
        a(f"Failed in this run: `{n['error'][:500]}`")
        a("")
        return L
    st, ld, m = n.get("stamp", {}), n.get("load", {}), n.get("medians", {})
    a(
        f"Run {st.get('date')} on {st.get('cores')} cores (load average "
        f"{st.get('load_average_at_start')} at the start, {st.get('load_average_at_end')} at the "
        f"end), PostgreSQL {n.get('postgresql')} on loopback (fsync on). Same load for every "
        f"set-up: h2load, **{ld.get('connections')} connections × {ld.get('streams')} streams in "
        f"total** (two nodes: one h2load per node, half the connections each, started together), "
        f"**{_f(ld.get('requests'))} Decide requests** (part 1's APPROVE case) after "
        f"{ld.get('warmup_per_node')} per node to warm up; {len(n.get('rounds', []))} rounds, "
        "set-ups in rotated order, fresh processes and database each. Every run checks that the "
        "trail holds exactly one APPROVE record per request answered. CPU is each part's "
        "utime + stime over the measured run (/proc), per decision."
    )
    a("")
    a(
        "| set-up | throughput | ratio to one node on SQLite | p50 | p99 | records per commit "
        "| commits/s | CPU ms per decision: nodes / PostgreSQL / h2load | cores used |"
    )
    a("|---|---|---|---|---|---|---|---|---|")
    for s, what in WHAT.items():
        x = m.get(s)
        if not x:
            continue
        ratio = "1" if s == "sqlite-1" else _f(m.get(f"ratio_{s}_sqlite"), 2)
        a(
            f"| {what} | **{_f(x['rps'])}/s** | **{ratio}** | {_f(x['p50_ms'], 1)} ms "
            f"| **{_f(x['p99_ms'], 1)} ms** | {_f(x['records_per_commit'], 1)} "
            f"| {_f(x['commits_per_second'])} | {_f(x['cpu_ms_per_decision_nodes'], 2)} / "
            f"{_f(x['cpu_ms_per_decision_postgresql'], 2)} / "
            f"{_f(x['cpu_ms_per_decision_h2load'], 2)} | {_f(x['cores_busy'], 2)} |"
        )
    a("")
    L.extend(_scaling(m, st))
    return L


def _round(x: float) -> str:
    """Two significant figures: an estimate, not a measurement."""
    return f"{float(f'{x:.2g}'):,.0f}"


def _scaling(m: dict[str, Any], st: dict[str, Any]) -> list[str]:
    two, sync = m.get("pg-2", {}), m.get("pg-2-sync", {})
    node_ms = two.get("cpu_ms_per_decision_nodes")
    pg_ms = two.get("cpu_ms_per_decision_postgresql")
    sync_ms = sync.get("cpu_ms_per_decision_postgresql")
    if not (node_ms and pg_ms):
        return []
    cores = st.get("cores")
    return [
        f"**What {cores} cores can show.** Both nodes, PostgreSQL (and its standby), h2load and "
        "whatever else runs on this shared machine take turns on the same "
        f"{cores} cores, so a second node brings no CPU of its own: what it adds is a second "
        "Python process (its own GIL, event loop and writer thread), which is what the ratio "
        "above measures. It is not the ratio two machines would give. The last column says how "
        "much of the machine each set-up got (CPU seconds of its own processes over the run's "
        "seconds): under the load average above, about half, whichever the set-up, so the "
        "throughputs compare work per CPU second more than parallelism.",
        "",
        f"**How it scales, from these figures.** A node spends **{node_ms:.2f} ms of CPU per "
        f"decision** (about {1000 / node_ms:,.0f} decisions/s per node core, Python-bound: "
        f"part 1's profile), PostgreSQL **{pg_ms:.2f} ms** ({pg_ms / node_ms:.0%} of a node's)"
        + (
            f", {sync_ms:.2f} ms with the synchronous standby (both servers counted)"
            if sync_ms
            else ""
        )
        + f". So one database core keeps up with about **{node_ms / pg_ms:.0f} node cores**: "
        "nodes on their own machines add throughput nearly linearly (the decision, its JSON, "
        "hashing and the gRPC work are per node), until the database's share or its one serial "
        "section is reached. That section is the trail's lock (`pg_advisory_xact_lock`): commits, "
        "not decisions, pass it one at a time, and each holds it for one transaction (plus, with "
        "a synchronous standby, one round trip and the standby's flush). Group commit is what "
        "keeps it from capping decisions: the busier the nodes, the more records each commit "
        f"carries (here {two.get('records_per_commit', 0):.1f} per commit at "
        f"{two.get('commits_per_second', 0):.0f} commits/s with two nodes). On separate "
        "machines, expect roughly nodes × cores × "
        f"{1000 / node_ms:,.0f}/s until the database's CPU (≈ {_round(1000 / pg_ms)} decisions/s "
        "per database core at this batch size) or its disk's flush rate times records per "
        "commit binds; sizing in docs/DEPLOY.md starts from these figures.",
        "",
    ]
