"""KPIs and citizen ratings: a hand-written month of cases (October 2026: the National Day
holidays of 1-7 October and the 调休 make-up working Saturday of 10 October) gives the
numbers worked out by hand below; on a real server a closed case is rated once, a second
rating and a rating of an open case are refused, and GetKpis / `miaopi kpi` report them."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from structlog.testing import capture_logs

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi.v1 import review_pb2 as rpb
from miaopi.v1 import review_pb2_grpc as rpb_grpc
from miaopi_client.cli import main
from miaopi_server.casework import states as s
from miaopi_server.casework.deadlines import Pause
from miaopi_server.casework.kpi import CaseFacts, month_bounds, ranking, working_hours_between
from miaopi_server.casework.model import Task
from miaopi_server.clock import SHANGHAI, utc_now
from miaopi_server.edge.auth import hash_token
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.support import (
    CENTENARIAN,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    decide_request,
    resident_id,
)


def at(day: int, hour: int, month: int = 10) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=SHANGHAI)


def case(
    kind: str, state: str, department: str, opened: dt.datetime, *, rules: str = "",
    verdict: str = "APPROVE", outcome: str = "", overridden: bool = False, promised: int = 5,
    pauses: tuple[Pause, ...] = (), claimed: dt.datetime | None = None,
    closed: dt.datetime | None = None, score: int = 0,
) -> CaseFacts:  # fmt: skip
    task = Task(
        decision_id=f"d-{opened.isoformat()}", kind=kind, state=state, item_code="GF1",
        department=department, jurisdiction="440605", window_id="W1", opened_at=opened,
        promised_days=promised, statutory_days=20, supplement_days=5,
        rules_outcome=rules or ("MANUAL_REVIEW" if kind == s.REVIEW else "APPROVE"),
        rules_verdict=verdict, outcome=outcome, overridden=overridden, pauses=pauses,
    )  # fmt: skip
    return CaseFacts(task, claimed, closed, score)


CIVIL, MARKET = "民政局", "市场局"
OCTOBER = [
    # A, B: closed by the rules at once.
    case(s.INSTANT, s.CLOSED, CIVIL, at(9, 10), rules="APPROVE", score=5),
    case(s.INSTANT, s.CLOSED, CIVIL, at(12, 10), rules="REJECT", verdict="REJECT", score=2),
    # C: opened Fri 9th, claimed Sat 10th (调休: a working day) after 7 + 1 office hours,
    # decided Tue 13th = the 3rd working day (10th, 12th, 13th): 3 days, on time.
    case(
        s.REVIEW,
        s.DECIDED,
        CIVIL,
        at(9, 10),
        outcome="APPROVE",
        promised=3,
        claimed=at(10, 10),
        closed=at(13, 15),
        score=4,
    ),
    # D: opened on the holiday of 1st; claimed Fri 9th after 8 (8th) + 1 office hours: late;
    # rejected against the rules' verdict (override) on Mon 12th: 4 working days (8, 9, 10,
    # 12), promised 2 (due 9th): late, overdue.
    case(
        s.REVIEW,
        s.DECIDED,
        CIVIL,
        at(1, 11),
        outcome="REJECT",
        overridden=True,
        promised=2,
        claimed=at(9, 10),
        closed=at(12, 11),
    ),
    # E: claimed within the hour; supplement awaited 15th-20th (3 working days paused: 16, 19,
    # 20); decided 22nd: 6 - 3 = 3 days; due 8 working days after 14th = 26th: on time.
    case(
        s.REVIEW,
        s.DECIDED,
        MARKET,
        at(14, 15),
        outcome="APPROVE",
        claimed=at(14, 16),
        pauses=(Pause("supplement", "", dt.date(2026, 10, 15), dt.date(2026, 10, 20)),),
        closed=at(22, 10),
        score=3,
    ),
    # F: never claimed, still open on 5 November: promised 1 day (due 27th): overdue.
    case(s.REVIEW, s.OPEN, MARKET, at(26, 9), promised=1),
    # G: a 容缺 approval whose materials came: resolved, an APPROVE, not handled by reviewers.
    case(s.SUPPLEMENT, s.SUPPLEMENTED, MARKET, at(16, 10), rules="APPROVE", closed=at(20, 9)),
    # H: withdrawn before anyone claimed it: in no rate but the instant rate.
    case(s.REVIEW, s.WITHDRAWN, MARKET, at(28, 10), closed=at(28, 11)),
    # I: closed at once.
    case(s.INSTANT, s.CLOSED, MARKET, at(30, 16), rules="APPROVE", score=5),
]
NOW = at(5, 12, month=11)


def test_office_hours_count_the_make_up_saturday_and_skip_the_holidays() -> None:
    assert working_hours_between(at(9, 10), at(10, 10)) == 8.0  # Fri 7 h + Sat (调休) 1 h
    assert working_hours_between(at(1, 11), at(9, 10)) == 9.0  # 1st-7th holidays: 8th + 1 h
    assert working_hours_between(at(11, 10), at(11, 16)) == 0.0  # an ordinary Sunday


def test_month_bounds_are_shanghai_months() -> None:
    start, end = month_bounds("2026-10")
    assert (start, end) == (
        dt.datetime(2026, 9, 30, 16, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 31, 16, tzinfo=dt.UTC),
    )
    assert month_bounds("2026-12")[1] == dt.datetime(2026, 12, 31, 16, tzinfo=dt.UTC)
    for bad in ("2026-1", "202610", "2026-13", ""):
        with pytest.raises(ValueError):
            month_bounds(bad)


def test_a_hand_computed_month() -> None:
    rows, total = ranking(OCTOBER, "department", NOW, response_hours=8)
    assert total.cases == 9 and total.instant == 3
    assert total.instant_rate == pytest.approx(3 / 9)
    assert total.approval_rate == pytest.approx(5 / 7)  # A C E G I of A B C D E G I
    assert total.median_days == 1.5  # 0 0 0 3 3 4
    assert total.p90_days == 4
    assert total.on_time_rate == pytest.approx(5 / 6)  # D late
    assert (total.overdue, total.overrides) == (2, 1)  # D F; D
    assert total.response_rate == pytest.approx(2 / 4)  # C E of C D E F
    assert total.resolution_rate == pytest.approx(7 / 8)  # F open; H withdrawn
    assert (total.ratings, total.satisfaction_rate) == (5, pytest.approx(3 / 5))
    assert total.score == pytest.approx((0.5 + 0.875 + 0.6) / 3)

    assert [r.key for r in rows] == [CIVIL, MARKET]
    civil, market = rows
    assert (civil.cases, civil.instant_rate, civil.approval_rate) == (4, 0.5, 0.5)
    assert (civil.median_days, civil.p90_days, civil.on_time_rate) == (1.5, 4, 0.75)
    assert (civil.overdue, civil.overrides, civil.response_rate) == (1, 1, 0.5)
    assert (civil.resolution_rate, civil.ratings) == (1.0, 3)
    assert civil.satisfaction_rate == pytest.approx(2 / 3)
    assert civil.score == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert (market.cases, market.instant_rate, market.approval_rate) == (5, 0.2, 1.0)
    assert (market.median_days, market.p90_days, market.on_time_rate) == (1.5, 3, 1.0)
    assert (market.overdue, market.overrides, market.response_rate) == (1, 0, 0.5)
    assert (market.resolution_rate, market.ratings, market.satisfaction_rate) == (0.75, 2, 0.5)


def test_an_empty_group_has_no_rates_and_bad_grouping_is_refused() -> None:
    rows, total = ranking([], "item", NOW, 8)
    assert rows == [] and total.cases == 0 and total.instant_rate is None
    assert total.median_days is None and total.score is None
    with pytest.raises(ValueError):
        ranking(OCTOBER, "colour", NOW, 8)


# -- on a real server
PRINCIPALS: list[dict[str, Any]] = [
    {"id": "win", "role": "window", "window_id": "W-GC-01", "jurisdiction": "440605",
     "items": ["*"]},
    {"id": "sup", "role": "supervisor", "jurisdiction": "440605"},
    {"id": "sup-far", "role": "supervisor", "jurisdiction": "440606"},
]  # fmt: skip


def md(who: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer token-{who}")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    state: Path = tmp_path_factory.mktemp("kpi")
    creds = state / "credentials.yaml"
    entries = [{**p, "token_sha256": hash_token(f"token-{p['id']}")} for p in PRINCIPALS]
    creds.write_text(yaml.safe_dump({"principals": entries}, allow_unicode=True), "utf-8")
    settings = Settings(
        listen="127.0.0.1:0", rulesets=RULESETS, state_dir=state, credentials=creds,
        rate_per_second=0, watch_seconds=0,
    )  # fmt: skip
    running = LiveServer(settings, auth=True)
    yield running
    running.stop()


def cli(target: str, who: str, *argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with capture_logs(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--target", target, "--token", f"token-{who}", *argv])
    return code, out.getvalue() + err.getvalue()


def test_ratings_once_and_kpis_on_a_real_server(server: LiveServer) -> None:
    with grpc.insecure_channel(server.target) as ch:
        approval, review = pb_grpc.ApprovalServiceStub(ch), rpb_grpc.ReviewServiceStub(ch)
        instant = approval.Decide(
            decide_request("GF00012000", SENIOR, SENIOR_MATERIALS), metadata=md("win")
        ).decision
        assert instant.outcome == pb.OUTCOME_APPROVE
        req = decide_request("GF00012000", CENTENARIAN, SENIOR_MATERIALS)
        req.facts["applicant"]["id_number"] = resident_id("1915-06-01")
        review_id = approval.Decide(req, metadata=md("win")).decision.decision_id

        def rate(decision_id: str, score: int, comment: str = "") -> Any:
            r = rpb.RateCaseRequest(decision_id=decision_id, score=score, comment=comment)
            return review.RateCase(r, metadata=md("win"))

        with pytest.raises(grpc.RpcError) as info:
            rate(instant.decision_id, 0)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        rated = rate(instant.decision_id, 5, "办事很快，谢谢")
        assert rated.seq > 0 and rated.task.state == "closed"
        for again in (5, 1):  # never editable
            with pytest.raises(grpc.RpcError) as info:
                rate(instant.decision_id, again)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "已评价" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:  # an open review task is not closed yet
            rate(review_id, 4)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.RpcError) as info:  # supervisors do not rate
            review.RateCase(rpb.RateCaseRequest(decision_id=review_id, score=3), metadata=md("sup"))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED

        month = utc_now().astimezone(SHANGHAI).strftime("%Y-%m")
        kpis = review.GetKpis(rpb.GetKpisRequest(month=month, by="item"), metadata=md("sup"))
        total = kpis.total
        assert (total.cases, total.instant_cases, total.ratings) == (2, 1, 1)
        assert total.instant_rate == 0.5 and total.satisfaction_rate == 1.0
        assert total.approval_rate == 1.0 and total.HasField("on_time_rate") is not False
        assert [r.key for r in kpis.rows] == ["GF00012000"] and kpis.rows[0].rank == 1
        far = review.GetKpis(rpb.GetKpisRequest(month=month), metadata=md("sup-far"))
        assert far.total.cases == 0 and not far.total.HasField("instant_rate")
        with pytest.raises(grpc.RpcError) as info:
            review.GetKpis(rpb.GetKpisRequest(month="2026/11", by="x"), metadata=md("sup"))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as info:
            review.GetKpis(rpb.GetKpisRequest(month=month), metadata=md("win"))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED

    code, out = cli(server.target, "sup", "kpi", "--month", month, "--by", "item")
    assert code == 0 and "GF00012000" in out and "50.0%" in out and "satisfaction" in out
    code, out = cli(server.target, "sup", "kpi", "--month", month, "--csv")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("rank,key,cases") and lines[-1].startswith("0,,2,")
    code, out = cli(server.target, "sup", "kpi", "--month", month, "--json")
    assert code == 0 and json.loads(out)["total"]["ratings"] == 1
    code, out = cli(server.target, "sup", "audit", "verify")
    assert code == 0, out


def test_alerts_stream_is_for_supervisors_and_checks_its_cursor(server: LiveServer) -> None:
    with grpc.insecure_channel(server.target) as ch:
        review = rpb_grpc.ReviewServiceStub(ch)

        def watch(who: str, after: int) -> list[Any]:
            req = rpb.WatchAlertsRequest(after_seq=after)
            return list(review.WatchAlerts(req, metadata=md(who), timeout=10))

        assert watch("sup", 0) == []  # nothing is overdue on the day its cases were opened
        for who, after, code in (
            ("win", 0, grpc.StatusCode.PERMISSION_DENIED),
            ("sup", -1, grpc.StatusCode.INVALID_ARGUMENT),
        ):
            with pytest.raises(grpc.RpcError) as info:
                watch(who, after)
            assert info.value.code() == code
