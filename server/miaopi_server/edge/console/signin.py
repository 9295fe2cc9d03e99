"""Sign-in and sign-out. The credential is checked by the same guard as every gRPC call
(ApprovalService.guard): unknown tokens are refused with the API's words, and failed
attempts count against the caller's address like failed gRPC authentications."""

from __future__ import annotations

import secrets

import structlog
from aiohttp import web

from miaopi_server.edge.console.base import (
    SESSION,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    console_of,
    context,
    refusal_page,
    render,
)
from miaopi_server.edge.console.calls import Credential, Refused

log = structlog.get_logger("miaopi.console")
# Any role may call it: signing in asks only "who is this?".
SIGNIN_RPC = "ListItems"
HOME = {
    "reviewer": "/queue",
    "window": "/queue",
    "supervisor": "/supervision",
    "admin": "/supervision",
}


def _cookie(response: web.StreamResponse, request: web.Request, name: str, value: str) -> None:
    response.set_cookie(
        name, value, httponly=True, samesite="Strict", path="/",
        secure=console_of(request).secure,
    )  # fmt: skip


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(HOME.get(request[SESSION].role, "/queue"))


def _form(request: web.Request, status: int = 200, error: str = "") -> web.Response:
    # One token per browser, not per page view: a second view of the form (another tab, or
    # the browser's own favicon request sent here) must not void the first one's token.
    token = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "signin.html", status, signin_csrf=token, error=error)
    _cookie(response, request, SIGNIN_COOKIE, token)
    return response


async def form(request: web.Request) -> web.StreamResponse:
    return _form(request)


async def submit(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    token = str((await request.post()).get("token", "")).strip()
    if not token:
        return _form(request, 400, "请输入令牌。")
    credential = Credential(token=token)
    try:
        principal = await console.approval.guard(context(request, credential), SIGNIN_RPC)
    except Refused as refused:
        if refused.code.name == "UNAUTHENTICATED":
            return _form(request, 401, refused.message)
        return refusal_page(request, refused, "无法登录")
    session = console.sessions.open(principal.id, principal.role, credential)
    log.info("console.signed_in", principal=principal.id, role=principal.role)
    response = web.HTTPSeeOther("/")
    _cookie(response, request, SESSION_COOKIE, session.id)
    response.del_cookie(SIGNIN_COOKIE, path="/")
    raise response


async def signout(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    console_of(request).sessions.close(session.id)
    log.info("console.signed_out", principal=session.principal_id)
    response = web.HTTPSeeOther("/signin")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
