"""One contract for every audit store: the same tests on SQLite (a file) and PostgreSQL (a
real server, tests/postgres.py). What only one backend has (SQLite's file modes and
checkpoints; PostgreSQL's migrations and nodes) is tested beside its own code."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from miaopi_server.audit import seal
from miaopi_server.audit.chainstore import ChainStore
from miaopi_server.audit.postgres.store import PostgresAuditStore
from miaopi_server.audit.record import StoredRecord
from miaopi_server.audit.sqlite import SQLiteAuditStore
from miaopi_server.audit.store import DuplicateRequest, ListFilter, PublishedSet
from miaopi_server.audit.transition import PendingTransition, new_transition
from miaopi_server.casework import states as s
from miaopi_server.casework.alerts import ESCALATED
from miaopi_server.casework.model import Action, Task
from miaopi_server.casework.rating import RATE
from miaopi_server.casework.states import IllegalTransition
from miaopi_server.errors import AuditTrailDiverged
from tests import rfc9162
from tests.postgres import migrated_database
from tests.support import pending

Opener = Callable[..., ChainStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a store of the backend; on PostgreSQL every store of one test shares one
    database (each `state` directory is a node: its own witness)."""
    sealer, _ = seal.load_or_create(tmp_path / "key.pem")
    dsn = (
        migrated_database(request.getfixturevalue("postgres")) if request.param != "sqlite" else ""
    )
    opened: list[ChainStore] = []

    def make(state: Path = tmp_path / "node1", node_id: str = "n1", **kw: Any) -> ChainStore:
        state.mkdir(parents=True, exist_ok=True)
        if dsn:
            store: ChainStore = PostgresAuditStore(dsn, state, sealer, node_id=node_id, **kw)
        else:
            store = SQLiteAuditStore(tmp_path / "audit.sqlite3", sealer, node_id=node_id, **kw)
        opened.append(store)
        return store

    yield make
    for store in opened:
        with contextlib.suppress(Exception):  # closed by the test already
            store.close()


def fill(store: ChainStore, sizes: tuple[int, ...], first: int = 1) -> None:
    n = first
    for size in sizes:
        futures = [store.append(pending(n + i)) for i in range(size)]
        for f in futures:
            f.result(timeout=20)
        n += size


def receipt_verifies(store: ChainStore, r: StoredRecord) -> bool:
    """The record's tree head is signed by the store's key and its inclusion proof leads
    from the record's hash to that head's root (RFC 9162, checked independently)."""
    keys = {store.sealer.key_id: store.sealer.public_raw}
    return (
        r.tree_head is not None
        and r.tree_head.verifies(keys)
        and rfc9162.verify_inclusion(
            r.seq - 1,
            r.tree_head.tree_size,
            rfc9162.leaf(bytes.fromhex(r.record_hash)),
            [bytes.fromhex(h) for h in r.inclusion_proof],
            bytes.fromhex(r.tree_head.root_hash),
        )
    )


def test_a_large_batch_is_written_whole(open_store: Opener) -> None:
    """Hundreds of records queued at once go into few batches, each written by multi-row
    statements (more rows than one statement takes among them): every record, its case and the
    tree come back and verify."""
    store = open_store()
    futures = [store.append(pending(n)) for n in range(1, 701)]
    for f in futures:
        f.result(timeout=60)
    for seq in (1, 255, 256, 257, 512, 700):
        r = store.get(f"d{seq}")
        assert r is not None and r.seq == seq and receipt_verifies(store, r)
        assert r.case == {"item_code": "T1", "facts": {"n": seq}, "materials": []}
    assert store.records_written == 700 and store.batches < 700
    checked = store.verify()
    assert checked.ok and checked.checked == 700


def test_records_read_back_with_their_receipts(open_store: Opener) -> None:
    store = open_store()
    fill(store, (3, 1, 12, 7))
    for seq in range(1, 24):
        r = store.get(f"d{seq}")
        assert r is not None and r.seq == seq and receipt_verifies(store, r)
        assert r.case == {"item_code": "T1", "facts": {"n": seq}, "materials": []}
    page = store.list(ListFilter(item_code="T1"), 5)
    assert [r.seq for r in page] == [23, 22, 21, 20, 19]
    assert [r.seq for r in store.list(ListFilter(), 3, before_seq=19)] == [18, 17, 16]
    assert store.list(ListFilter(outcome="REJECT"), 5) == []
    window = store.list(ListFilter(decided_from="2026-11-23T00:00:05.000000Z",
                                   decided_to="2026-11-23T00:00:07.000000Z"), 10)  # fmt: skip
    assert [r.seq for r in window] == [6, 5]
    v = store.verify()
    assert (v.ok, v.checked) == (True, 23), v
    assert store.get("nope") is None


def test_consistency_proofs_between_heads(open_store: Opener) -> None:
    store = open_store()
    fill(store, (1, 1, 2, 3, 1, 8, 33, 5, 1))
    latest = store.latest_head()
    assert latest is not None and latest.tree_size == 55
    for first in (1, 2, 4, 7, 16, 48, 55):
        head, proof = store.consistency(first)
        old = store.get(f"d{first}")
        assert old is not None and old.tree_head is not None
        if old.tree_head.tree_size != first:
            continue  # no head at exactly that size
        assert rfc9162.verify_consistency(
            first, head.tree_size, bytes.fromhex(old.tree_head.root_hash),
            bytes.fromhex(head.root_hash), proof,
        )  # fmt: skip
    with pytest.raises(ValueError):
        store.consistency(1, 53)  # no head of 53 records


def test_request_ids_are_idempotent_per_window(open_store: Opener) -> None:
    store = open_store()
    first = store.append(pending(1, request_id="r-1")).result(timeout=20)
    again = [store.append(pending(i, request_id="r-1")) for i in (2, 3)]
    for f in again:
        with pytest.raises(DuplicateRequest) as info:
            f.result(timeout=20)
        assert info.value.existing.decision_id == first.decision_id
    other = pending(4, request_id="r-1", window={"window_id": "w2", "operator_id": "op"})
    other = type(other)(**{**other.__dict__, "window_id": "w2"})
    assert store.append(other).result(timeout=20).seq == 2
    found = store.find_request("w1", "r-1")
    assert found is not None and found.decision_id == "d1" and found.tree_head is not None
    assert store.find_request("w1", "r-2") is None
    assert store.verify().ok


def test_purge_erases_cases_and_still_verifies(open_store: Opener) -> None:
    store = open_store()
    fill(store, (4, 6))
    event = store.purge("2026-11-23T00:00:05.000000Z", "admin")
    assert event.seq == 11
    got = store.get("d2")
    assert got is not None and got.case_purged and got.case == {}
    kept = store.get("d7")
    assert kept is not None and not kept.case_purged
    v = store.verify()
    assert (v.ok, v.checked, v.purged) == (True, 11, 4), v


def review_task(decision_id: str) -> Task:
    return Task(
        decision_id=decision_id, kind=s.REVIEW, state=s.OPEN, item_code="T1",
        department="civil", jurisdiction="440604", window_id="w1",
        opened_at=dt.datetime(2026, 11, 23, 1, tzinfo=dt.UTC), promised_days=3,
        statutory_days=20, supplement_days=5, rules_outcome="MANUAL_REVIEW",
        rules_verdict="",
    )  # fmt: skip


def claim(store: ChainStore, decision_id: str, by: str, n: int) -> Any:
    return store.transition(
        PendingTransition(
            transition_id=f"transition-{n}",
            decision_id=decision_id,
            action=Action("claim", by, dt.datetime(2026, 11, 23, 2, tzinfo=dt.UTC)),
            at="2026-11-23T02:00:00.000000Z",
            node_id="n1",
            claim_idle_seconds=1800,
        )
    )


def test_tasks_open_with_their_decision_and_a_claim_is_taken_once(open_store: Opener) -> None:
    store = open_store()
    p = pending(1)
    p = type(p)(**{**p.__dict__, "task": review_task("d1")})
    store.append(p).result(timeout=20)
    assert [t.decision_id for t in store.tasks(["civil"], "44", [s.OPEN], 10)] == ["d1"]
    assert store.tasks(["market"], "", [], 10) == []
    assert [t.decision_id for t in store.tasks([], "", [], 10, item_code="T1")] == ["d1"]
    assert store.tasks([], "", [], 10, item_code="T2") == []
    both = [claim(store, "d1", who, n) for n, who in enumerate(("r1", "r2"))]
    assert both[0].result(timeout=20).seq == 2
    with pytest.raises(IllegalTransition):  # another reviewer holds it
        both[1].result(timeout=20)
    task, last_seq = store.task("d1") or (None, 0)
    assert task is not None and (task.state, task.assignee, last_seq) == (s.CLAIMED, "r1", 2)
    assert store.verify().ok


def test_alerts_are_raised_once_and_read_in_order(open_store: Opener) -> None:
    store = open_store()
    p = pending(1)
    p = type(p)(**{**p.__dict__, "task": review_task("d1")})
    store.append(p).result(timeout=20)
    late = dt.datetime(2026, 12, 30, 2, tzinfo=dt.UTC)
    raised = store.raise_alerts(late, 0.2)
    assert [(a.decision_id, a.kind) for a in raised] == [("d1", "overdue_statutory")]
    assert store.raise_alerts(late, 0.2) == []
    assert [a.seq for a in store.alerts_after(0, "44", 10)] == [raised[0].seq]
    assert store.alerts_after(raised[0].seq, "", 10) == []
    assert store.latest_alerts_cursor("44", 1) == 0  # no more than one: read from the start
    assert store.latest_alerts_cursor("44", 0) == raised[0].seq  # none of them
    assert store.latest_alerts_cursor("45", 0) == 0  # none in that scope at all


def test_a_second_node_continues_one_chain_and_tree(open_store: Opener, tmp_path: Path) -> None:
    one = open_store(tmp_path / "node1", "n1")
    two = open_store(tmp_path / "node2", "n2")
    for i in range(1, 31):
        (one if i % 3 else two).append(pending(i)).result(timeout=20)
    got = [one.get(f"d{i}") for i in range(1, 31)]
    assert [r.seq for r in got if r] == list(range(1, 31))
    assert one.verify().ok and two.verify().ok


def test_a_trail_behind_the_witness_is_refused(open_store: Opener, tmp_path: Path) -> None:
    store = open_store()
    fill(store, (3,))
    head = store.latest_head()
    store.close()
    from miaopi_server.audit.treehead import sign_head
    from miaopi_server.audit.witness import write_witness

    assert head is not None
    ahead = sign_head(store.sealer, head.tree_size + 5, bytes.fromhex(head.root_hash), 1)
    write_witness(tmp_path / "node1" / "audit.witness.json", ahead)
    if isinstance(store, SQLiteAuditStore):
        write_witness(store.witness_file, ahead)
    with pytest.raises(AuditTrailDiverged, match="behind its witness"):
        open_store()


def move(store: ChainStore, decision_id: str, action: Action) -> Any:
    return store.transition(new_transition(decision_id, action, "n1", 1800))


AT = dt.datetime(2026, 11, 23, 3, tzinfo=dt.UTC)
SET = PublishedSet(
    "sha256:set-a",
    {"rulesets/a.yaml": "item: 高龄津贴\n", "rulesets/b.yaml": "item: 残疾人生活补贴\n"},
    {"A@1": "sha256:item-a1", "B@2": "sha256:item-b2"},
)


def events(store: ChainStore) -> list[dict[str, Any]]:
    with store._read() as conn:  # the trail's own events, as stored
        rows = conn.execute("SELECT body FROM records WHERE kind = 'event' ORDER BY seq")
        return [json.loads(body)["event"] for (body,) in rows]


def test_a_published_set_is_archived_once_and_read_back(open_store: Opener) -> None:
    store = open_store()
    first = store.publish(SET, {"trigger": "rpc", "by": "admin"})
    again = store.publish(SET, {"trigger": "SIGHUP", "by": ""})
    body = json.loads(first.body_json)["event"]
    # The event names the set; its files are the attachment, archived in the same commit.
    assert (body["set_digest"], body["files"], body["archived"]) == ("sha256:set-a", 2, True)
    assert "高龄津贴" not in first.body_json
    assert json.loads(again.body_json)["event"]["archived"] is False
    for digest in ("sha256:set-a", "sha256:item-b2"):  # by set, or by an item version in it
        found = store.published_set(digest)
        assert found is not None
        assert (found.set_digest, found.files, found.versions) == (SET.set_digest, SET.files,
                                                                   SET.versions)  # fmt: skip
        assert found.first_published_at == body["at"]
    assert store.published_set("sha256:none") is None
    other = store.record_event({"type": "dry_run", "by": "sup"}, attachment=SET)
    assert json.loads(other.body_json)["event"]["type"] == "dry_run"  # no archive but its own
    v = store.verify()
    assert (v.ok, v.checked) == (True, 3), v


def test_a_start_publication_is_recorded_once_by_stores_starting_together(
    open_store: Opener, tmp_path: Path
) -> None:
    """Two processes (SQLite) or nodes (PostgreSQL) publish the set they start with, 8 times
    each at once: one event, decided in the writer's transaction."""
    stores = [open_store(tmp_path / "node1", "n1"), open_store(tmp_path / "node2", "n2")]
    barrier = threading.Barrier(16)

    def start(i: int) -> Any:
        barrier.wait(timeout=20)
        return stores[i % 2].publish_new(SET, {"trigger": "start", "by": ""})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        made = [r for r in pool.map(start, range(16)) if r is not None]
    assert len(made) == 1
    assert stores[1].publish_new(SET, {"trigger": "start", "by": ""}) is None
    newer = PublishedSet("sha256:set-b", {"rulesets/a.yaml": "item: 新\n"}, {"A@2": "sha256:a2"})
    assert stores[1].publish_new(newer, {"trigger": "start", "by": ""}) is not None
    assert [e["set_digest"] for e in events(stores[0])] == ["sha256:set-a", "sha256:set-b"]
    assert stores[0].verify().ok


def test_an_act_of_all_workers_is_recorded_once(open_store: Opener, tmp_path: Path) -> None:
    """`--workers` processes all carry out one reload (one act): its set is recorded once,
    decided in the writer's transaction. Another act is recorded even with the same set (as
    a second SIGHUP to one process is); an act some workers carried out with another set
    (the files changed during the relay) records that set too, once."""
    stores = [open_store(tmp_path / "node1", "n1"), open_store(tmp_path / "node2", "n2")]
    newer = PublishedSet("sha256:set-b", {"rulesets/a.yaml": "item: 新\n"}, {"A@2": "sha256:a2"})
    barrier = threading.Barrier(8)
    acts = [str(uuid.uuid4()) for _ in range(3)]

    def carry_out(act: str, published: PublishedSet, i: int) -> Any:
        barrier.wait(timeout=20)
        details = {"trigger": "SIGHUP", "by": "signal"}
        return stores[i % 2].publish_act(published, details, act)

    def event_id(act: str, published: PublishedSet) -> str:
        return f"event-{uuid.uuid5(uuid.UUID(act), published.set_digest)}"

    carried = [(acts[0], SET), (acts[1], newer), (acts[2], newer), (acts[1], SET)]
    for act, published in carried:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            made = pool.map(carry_out, [act] * 8, [published] * 8, range(8))
            recorded = [r for r in made if r is not None]
        assert [r.decision_id for r in recorded] == [event_id(act, published)]
    assert stores[0].publish_act(newer, {"trigger": "SIGHUP", "by": "signal"}, acts[1]) is None
    published = [e for e in events(stores[1]) if e["type"] == "ruleset_published"]
    assert [(e["id"], e["set_digest"]) for e in published] == [
        (event_id(act, p), p.set_digest) for act, p in carried
    ]
    assert stores[0].verify().ok


def test_an_escalation_stores_its_alert_and_notification_once(open_store: Opener) -> None:
    store = open_store()
    p = pending(1)
    store.append(type(p)(**{**p.__dict__, "task": review_task("d1")})).result(timeout=20)
    claim(store, "d1", "r1", 1).result(timeout=20)
    notes = ["请于三日内办结", "再次督办"]
    escalations = [
        move(store, "d1", Action(s.ESCALATE, "sup", AT, note=n, notify=("head-民政",)))
        for n in notes
    ]
    records = [f.result(timeout=20) for f in escalations]
    alerts = [a for a in store.alerts_after(0, "", 10) if a.kind == ESCALATED]
    assert [(a.note, a.recipients) for a in alerts] == [(n, ("r1", "head-民政")) for n in notes]
    assert [store.escalation_alert_seq(r.decision_id) for r in records] == [a.seq for a in alerts]
    task, _ = store.task("d1") or (None, 0)
    assert task is not None and task.escalations == 2
    assert [t.decision_id for t in store.tasks([], "", [], 10, escalated_only=True)] == ["d1"]
    # The scheduler's scan raises no second alert for them; the outbox holds one row each.
    store.raise_alerts(AT, 0.2)
    assert len([a for a in store.alerts_after(0, "", 10) if a.kind == ESCALATED]) == 2
    assert store.undelivered() == 2
    history = store.history("d1", 1)
    assert [h["action"] for h in history] == [s.CLAIM, s.ESCALATE, s.ESCALATE]
    assert history[1]["note"] == "请于三日内办结"
    assert store.verify().ok


def test_outbox_leases_go_to_one_taker(open_store: Opener, tmp_path: Path) -> None:
    """Two takers (processes or nodes) at once: each notification leased to one of them;
    a failure waits its backoff, a lost lease cannot be marked, a lapsed lease is taken
    again."""
    one = open_store(tmp_path / "node1", "n1")
    two = open_store(tmp_path / "node2", "n2")
    p = pending(1)
    one.append(type(p)(**{**p.__dict__, "task": review_task("d1")})).result(timeout=20)
    for i in range(6):
        move(one, "d1", Action(s.ESCALATE, "sup", AT, note=f"督办{i}")).result(timeout=20)
    now, lease = AT + dt.timedelta(minutes=1), dt.timedelta(minutes=5)
    barrier = threading.Barrier(2)

    def take(side: int) -> list[Any]:
        barrier.wait(timeout=20)
        return (one, two)[side].take_deliveries(f"owner{side}", now, lease, 10)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        taken = list(pool.map(take, (0, 1)))
    ids = [d.id for d in taken[0]] + [d.id for d in taken[1]]
    assert len(ids) == 6 and len(set(ids)) == 6  # every row, each to one taker
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        assert list(pool.map(take, (0, 1))) == [[], []]  # nothing while the leases last
    side = 0 if taken[0] else 1
    mine, store = taken[side][0], (one, two)[side]
    assert mine.attempts == 1 and json.loads(mine.body)["alert_seq"] == mine.alert_seq
    assert not store.delivered(mine.id, "someone-else", now)
    assert store.delivery_failed(mine.id, f"owner{side}", now + dt.timedelta(hours=1), "HTTP 502")
    later = now + dt.timedelta(minutes=10)  # the other leases ran out: taken again
    retaken = two.take_deliveries("x", later, lease, 10)
    rest = sorted(d.id for d in taken[0] + taken[1] if d.id != mine.id)
    assert [(d.id, d.attempts) for d in retaken] == [(i, 2) for i in rest]
    first_owner = {d.id: f"owner{n}" for n in (0, 1) for d in taken[n]}
    assert not one.delivered(rest[0], first_owner[rest[0]], later)  # that lease was lost
    assert all(two.delivered(i, "x", later) for i in rest)
    assert one.undelivered() == 1
    again = one.take_deliveries("y", now + dt.timedelta(hours=2), lease, 10)  # after its backoff
    assert [(d.id, d.attempts) for d in again] == [(mine.id, 2)]
    assert one.delivered(mine.id, "y", now + dt.timedelta(hours=2))
    assert two.undelivered() == 0


def test_a_purge_erases_rating_comments_with_their_cases(open_store: Opener) -> None:
    store = open_store()
    fill(store, (3,))
    comment = "窗口服务很好，谢谢王小明"
    rated = move(store, "d2", Action(RATE, "citizen", AT, score=5, note=comment))
    record = rated.result(timeout=20)
    assert comment not in record.body_json and "comment_digest" in record.body_json
    move(store, "d3", Action(RATE, "citizen", AT, score=4, note="还行")).result(timeout=20)
    with store._read() as conn:
        rows = conn.execute("SELECT decision_id, comment FROM rating_comments ORDER BY seq")
        assert [tuple(r) for r in rows] == [("d2", comment), ("d3", "还行")]
    assert store.verify().ok
    event = store.purge("2026-11-23T00:00:03.000000Z", "admin")  # d1 and d2, not d3
    assert json.loads(event.body_json)["event"]["comments_purged"] == 1
    with store._read() as conn:
        rows = conn.execute("SELECT decision_id, comment FROM rating_comments")
        assert [tuple(r) for r in rows] == [("d3", "还行")]
    v = store.verify()
    assert (v.ok, v.purged) == (True, 2), v


def test_metrics_see_batches_and_open_tasks(open_store: Opener) -> None:
    store = open_store()
    seen: list[tuple[int, float]] = []
    store.on_batch = lambda n, seconds: seen.append((n, seconds))
    p = pending(1)
    store.append(type(p)(**{**p.__dict__, "task": review_task("d1")})).result(timeout=20)
    fill(store, (1,), first=2)
    assert [n for n, _ in seen] == [1, 1] and all(s >= 0 for _, s in seen)
    assert [t.decision_id for t in store.open_tasks()] == ["d1"]
    assert (store.batches, store.records_written) == (2, 2)


def test_a_node_joins_a_shared_trail_but_a_lost_witness_is_refused(
    open_store: Opener, tmp_path: Path
) -> None:
    """PostgreSQL: a node without a witness joins a trail with heads (taking its latest head).
    SQLite: one node's trail whose witness is gone is refused."""
    first = open_store(tmp_path / "node1", "n1")
    fill(first, (2,))
    if isinstance(first, PostgresAuditStore):
        second = open_store(tmp_path / "node2", "n2")
        assert second.joined is not None and second.joined.tree_size == 2
        assert second.append(pending(3)).result(timeout=20).seq == 3
        assert first.joined is None
    else:
        first.close()
        first.witness_file.unlink()
        with pytest.raises(AuditTrailDiverged, match=r"witness .* is missing"):
            open_store(tmp_path / "node1", "n1")
