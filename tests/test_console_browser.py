"""The web console in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright; the Makefile's test set-up installs it, and without it these tests fail): a
reviewer signs in with the keyboard, sees the MANUAL_REVIEW case a window's Decide opened,
claims and decides it on the page, and the transition is on the verified audit trail; a
supervisor's page receives an alert without reloading and shows the KPIs GetKpis gives;
pages fit a 1366x768 screen and a 390x844 phone without scrolling sideways.

MIAOPI_SCREENSHOTS=DIR also saves the screenshots there (docs/img/ holds the README's)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi.v1 import review_pb2 as rpb
from miaopi.v1 import review_pb2_grpc as rpb_grpc
from miaopi_client.cli import main as cli
from miaopi_server.clock import SHANGHAI
from miaopi_server.ops.alerts import scan
from tests.conftest import LiveServer
from tests.console_support import console_server, console_url, md, review_case, token

CHROMIUM = "/usr/bin/chromium"
# As root with no outside network (PLATFORM.md): no sandbox, nothing phoned home.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
DESKTOP, PHONE = {"width": 1366, "height": 768}, {"width": 390, "height": 844}
WAIT_MS = 15_000  # the longest any page or alert may take to appear


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    running = console_server(tmp_path_factory.mktemp("console-browser"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stubs(server: LiveServer) -> Iterator[tuple[Any, Any]]:
    with grpc.insecure_channel(server.target) as ch:
        yield pb_grpc.ApprovalServiceStub(ch), rpb_grpc.ReviewServiceStub(ch)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make test` (it installs it)"
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        launched.close()


def sign_in(browser: Browser, server: LiveServer, who: str) -> Page:
    page = browser.new_context(viewport=DESKTOP, locale="zh-CN").new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(console_url(server) + "/")
    expect(page).to_have_url(console_url(server) + "/signin")
    page.get_by_label("访问令牌").focus()  # then the keyboard only
    page.keyboard.type(token(who))
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/signin" not in url)
    return page


def fits(page: Page, name: str, tmp: Path) -> None:
    """At a desktop and a phone size the page has no horizontal overflow; screenshots."""
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= size["width"], f"{name} at {label}: {width}px wide"
        shot = tmp / f"console-{name}-{label}.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("MIAOPI_SCREENSHOTS"):
            shutil.copy(shot, Path(os.environ["MIAOPI_SCREENSHOTS"]) / shot.name)
    page.set_viewport_size(DESKTOP)


def test_a_reviewer_claims_and_decides_a_case_in_the_browser(
    server: LiveServer, stubs: tuple[Any, Any], browser: Browser, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    approval, review = stubs
    decision_id = review_case(approval)
    page = sign_in(browser, server, "rev-civil")
    expect(page.locator("h1")).to_have_text("办件队列")
    row = page.locator(f'tr[data-decision="{decision_id}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("待认领")
    cookie = next(c for c in page.context.cookies() if c["name"] == "miaopi_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    fits(page, "queue", tmp_path)

    # Without the page's CSRF token the browser's own session cannot claim.
    forged = page.request.post(f"{console_url(server)}/cases/{decision_id}/claim", form={})
    assert forged.status == 403

    row.get_by_role("link").click()
    response = page.reload()
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("#h-decision")).to_contain_text("转人工审核")
    page.get_by_role("button", name="认领").click()
    expect(page.get_by_role("status")).to_have_text("已认领")
    fits(page, "case", tmp_path)

    page.get_by_label("准予").check()
    page.get_by_label("理由（每行一条）").fill("年满百岁，户籍核实无误")
    page.get_by_role("button", name="提交决定").click()
    expect(page.get_by_role("status")).to_have_text("决定已作出并记入审计链")
    expect(page.locator("dd.state")).to_have_text("已办结")
    expect(page.locator(".history")).to_contain_text("年满百岁，户籍核实无误")

    got = review.GetTask(rpb.GetTaskRequest(decision_id=decision_id), metadata=md("sup"))
    assert (got.task.state, got.task.outcome, got.task.assignee) == (
        "decided", pb.OUTCOME_APPROVE, "rev-civil",
    )  # fmt: skip
    capsys.readouterr()
    assert cli(["--target", server.target, "--token", token("sup"), "audit", "verify",
                "--json"]) == 0  # fmt: skip
    verified = json.loads(capsys.readouterr().out)
    assert verified["ok"] and verified["checked"] >= got.task.last_seq


def test_an_alert_arrives_live_and_the_kpis_are_the_apis(
    server: LiveServer, stubs: tuple[Any, Any], browser: Browser, tmp_path: Path
) -> None:
    approval, review = stubs
    decision_id = review_case(approval)
    page = sign_in(browser, server, "sup")
    expect(page.locator("h1")).to_have_text("督查")
    page.evaluate("window.notReloaded = true")

    # A reviewer decides against the rules' verdict; the scheduler's pass raises the alert.
    review.ClaimTask(rpb.ClaimTaskRequest(decision_id=decision_id), metadata=md("rev-civil"))
    review.DecideTask(
        rpb.DecideTaskRequest(
            decision_id=decision_id, outcome=pb.OUTCOME_REJECT, reasons=["户籍存疑"],
            legal_basis=["行政许可法第三十八条"], justification="现场核验不符",
        ),
        metadata=md("rev-civil"),
    )  # fmt: skip
    scan(server.running.store, dt.datetime.now(dt.UTC))
    live = page.locator(f'#alerts li.fresh a[href="/cases/{decision_id}"]')
    expect(live).to_be_visible()
    expect(page.locator("#alerts li.fresh").first).to_contain_text("不合规办理")
    assert page.evaluate("window.notReloaded") is True

    month = dt.datetime.now(SHANGHAI).strftime("%Y-%m")
    page.goto(f"{console_url(server)}/supervision?month={month}&by=item")
    kpis = review.GetKpis(rpb.GetKpisRequest(month=month, by="item"), metadata=md("sup"))
    expect(page.locator('[data-kpi="cases"]')).to_have_text(str(kpis.total.cases))
    expect(page.locator('[data-kpi="overdue"]')).to_have_text(str(kpis.total.overdue))
    expect(page.locator('[data-kpi="instant_rate"]')).to_have_text(
        f"{100 * kpis.total.instant_rate:.1f}%"
    )
    for r in kpis.rows:
        expect(page.locator(f'tr[data-key="{r.key}"] td').first).to_have_text(str(r.rank))
    assert page.locator(".chart svg").count() == 4
    fits(page, "supervision", tmp_path)


def test_a_window_is_shown_the_refusal_not_the_supervision_page(
    server: LiveServer, browser: Browser
) -> None:
    page = sign_in(browser, server, "win")
    response = page.goto(f"{console_url(server)}/supervision")
    assert response is not None and response.status == 403
    expect(page.get_by_role("alert")).to_contain_text("无权执行：角色 window 不能调用 GetKpis")
    expect(page.get_by_role("link", name="督查")).to_have_count(0)
