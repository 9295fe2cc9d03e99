"""Sign-in and sign-out. The credential (a token, or the connection's client certificate) is
checked by the same guard as every gRPC call (ApprovalService.guard): unknown credentials are
refused with the API's words, and failed attempts count against the caller's address like
failed gRPC authentications."""

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
    form_of,
    peer_common_name,
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


def _form(
    request: web.Request, status: int = 200, error: str = "", cert_error: str = ""
) -> web.Response:
    # One token per browser, not per page view: a second view of the form (another tab, or
    # the browser's own favicon request sent here) must not void the first one's token.
    token = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request, "signin.html", status, signin_csrf=token, error=error, cert_error=cert_error,
        certificates=console_of(request).certificates,
    )  # fmt: skip
    _cookie(response, request, SIGNIN_COOKIE, token)
    return response


async def form(request: web.Request) -> web.StreamResponse:
    return _form(request)


async def submit(request: web.Request) -> web.StreamResponse:
    """Sign in with a token typed into the form, or ("使用数字证书登录") with the client
    certificate of this connection: the principal gRPC maps that certificate to."""
    console = console_of(request)
    form = form_of(request)
    if form.get("method") == "certificate":
        name = peer_common_name(request) if console.certificates else ""
        if not name:
            return _form(
                request, 401, cert_error="此连接未出示数字证书：请在浏览器中选择证书后重试。"
            )
        credential = Credential(cert_common_name=name)
    else:
        token = form.get("token", "").strip()
        if not token:
            return _form(request, 400, "请输入令牌。")
        credential = Credential(token=token)
    try:
        principal = await console.approval.guard(context(request, credential), SIGNIN_RPC)
    except Refused as refused:
        if refused.code.name == "UNAUTHENTICATED":
            if credential.cert_common_name:
                return _form(request, 401, cert_error=refused.message)
            return _form(request, 401, refused.message)
        return refusal_page(request, refused, "无法登录")
    session = console.sessions.open(principal.id, principal.role, credential)
    method = "certificate" if credential.cert_common_name else "token"
    log.info("console.signed_in", principal=principal.id, role=principal.role, method=method)
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
