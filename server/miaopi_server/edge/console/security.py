"""Headers on every response, the session on every request, CSRF on every state change.

- Content-Security-Policy: only this origin's own scripts, styles and images, no inline
  script or style, no framing, forms post only here; plus nosniff, no referrer, no caching.
- A request without a live session is sent to the sign-in page (GET) or refused (POST); so
  is one whose session was signed in by a certificate its connection does not present.
- A POST must carry the session's CSRF token in its form (the sign-in form: the token of its
  own cookie), and, when the browser says where it comes from (Origin), come from here.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from miaopi_server.edge.console.base import (
    CSRF_FIELD,
    SESSION,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    console_of,
    peer_common_name,
    read_form,
    render,
)
from miaopi_server.edge.console.sessions import Session

log = structlog.get_logger("miaopi.console")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send Origin: null
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
PUBLIC = ("/signin", "/static/")  # reachable without a session


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(HEADERS)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"


def _public(path: str) -> bool:
    return path == PUBLIC[0] or path.startswith(PUBLIC[1])


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not sent: the CSRF token alone decides
        return True
    return origin == f"{request.scheme}://{request.host}"


def _route_of(request: web.Request) -> str:
    """The route a request matched, as declared ("/cases/{decision_id}/{action}")."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def _own_certificate(request: web.Request, session: Session) -> bool:
    """A session signed in by certificate is only good on a connection that presents that
    certificate: its cookie alone (stolen, replayed elsewhere) signs no one in."""
    name = session.credential.cert_common_name
    if not name or peer_common_name(request) == name:
        return True
    log.warning("console.certificate_missing", principal=session.principal_id)
    return False


@web.middleware
async def session_and_csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    console = console_of(request)
    session = console.sessions.get(
        request.cookies.get(SESSION_COOKIE, ""), lambda s: _own_certificate(request, s)
    )
    if session is not None:
        request[SESSION] = session
    if request.method == "POST":
        form = await read_form(request)
        if form is None:
            return render(
                request, "error.html", 400, title="请求无效",
                message="表单无法读取：请从本系统的页面提交（UTF-8 编码的表单）。",
            )  # fmt: skip
        given = form.get(CSRF_FIELD, "")
        if session is not None and request.path != "/signin":
            expected = session.csrf
        else:
            expected = request.cookies.get(SIGNIN_COOKIE, "")
        if not (
            expected
            and given
            and hmac.compare_digest(given.encode(), expected.encode())
            and _same_origin(request)
        ):
            # Anyone can POST here before signing in: log the route, not the path they
            # chose (any length), and at most LogSampler's lines of it in a burst.
            route = _route_of(request)
            suppressed = console.refusals.admit(f"csrf/{route}")
            if suppressed is not None:
                log.warning(
                    "console.csrf_refused", route=route, signed_in=session is not None,
                    suppressed=suppressed,
                )  # fmt: skip
            return render(
                request, "error.html", 403, title="请求被拒绝",
                message="表单校验失败（CSRF）：请刷新页面后重试。",
            )  # fmt: skip
    if session is None and not _public(request.path):
        if request.method == "GET":
            raise web.HTTPSeeOther("/signin")
        return render(request, "error.html", 401, title="未登录", message="请先登录。")
    return await handler(request)


@web.middleware
async def crash_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An unexpected exception is logged and answered with a generic page, never its text."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("console.crashed", route=_route_of(request))  # never the path sent
        return render(
            request, "error.html", 500, title="服务内部错误", message="服务内部错误，请稍后重试。"
        )
