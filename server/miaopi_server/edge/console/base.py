"""What every console page shares: the console's parts, the signed-in session, rendering,
and turning a servicer's refusal into a page."""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import grpc
import jinja2
from aiohttp import web

from miaopi_server.audit.chainstore import ChainStore
from miaopi_server.edge.console import labels
from miaopi_server.edge.console.calls import ConsoleContext, Credential, Refused
from miaopi_server.edge.console.sessions import Session, Sessions
from miaopi_server.edge.review import ReviewService
from miaopi_server.edge.service import ApprovalService
from miaopi_server.ops.logs import LogSampler

SESSION_COOKIE = "miaopi_session"
SIGNIN_COOKIE = "miaopi_signin"  # the sign-in form's CSRF token (double submit)
CSRF_FIELD = "csrf"

# gRPC status -> HTTP status of the page that reports it.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
}


@dataclass
class Console:
    approval: ApprovalService
    review: ReviewService
    store: ChainStore  # the transition history of a case the services let one see
    templates: jinja2.Environment
    secure: bool  # served over TLS: the session cookie is Secure
    certificates: bool = False  # the TLS listener asks for client certificates (sign-in)
    sessions: Sessions = field(default_factory=Sessions)
    streams: set[asyncio.Task[Any]] = field(default_factory=set)  # open alert streams
    refusals: LogSampler = field(default_factory=LogSampler)  # bounds refused-request lines


CONSOLE = web.AppKey("console", Console)
SESSION = web.RequestKey("session", Session)  # the signed-in session of a request
FORM = web.RequestKey("form", dict)  # a POST's fields, read once (read_form)
FORM_TYPE = "application/x-www-form-urlencoded"  # what every form of the console sends


async def read_form(request: web.Request) -> dict[str, str] | None:
    """A POST's fields (the first value of each name), or None when the body is not a form
    the console's pages send: another content type (multipart: a file's repr became a
    reviewer's reason), an unknown charset, or bytes that are not text in it (aiohttp's
    request.post() turned %FF into U+FFFD, recorded as written, and raw non-UTF-8 bytes or a
    broken multipart body into an HTTP 500)."""
    if request.content_type != FORM_TYPE:
        return None
    charset = request.charset or "utf-8"
    try:
        text = (await request.read()).decode(charset)
        pairs = urllib.parse.parse_qsl(
            text, keep_blank_values=True, encoding=charset, errors="strict"
        )
    except (LookupError, UnicodeError, ValueError):
        return None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    request[FORM] = form
    return form


def form_of(request: web.Request) -> dict[str, str]:
    """The fields of a POST the middleware read (security.session_and_csrf)."""
    return request[FORM]


def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE]


def session_of(request: web.Request) -> Session:
    """The signed-in session (the middleware let only signed-in requests through)."""
    return request[SESSION]


def peer_common_name(request: web.Request) -> str:
    """The subject common name of the client certificate this request's TLS connection
    presented and the listener verified against the client CA ("" when none): the first CN,
    the name gRPC reports as x509_common_name."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


def context(request: web.Request, credential: Credential | None = None) -> ConsoleContext:
    """A servicer context calling as the signed-in principal (or with `credential`). A
    session signed in by certificate calls with the certificate of this request's connection
    (the middleware let it through only if it is the one signed in with)."""
    if credential is None:
        credential = session_of(request).credential
        if credential.cert_common_name:
            credential = Credential(cert_common_name=peer_common_name(request))
    return ConsoleContext(credential, request.remote or "")


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    session: Session | None = request.get(SESSION)
    flash = list(session.flash) if session else []
    if session:
        session.flash.clear()
    page = console_of(request).templates.get_template(template)
    html = page.render(
        session=session, csrf=session.csrf if session else "", flash=flash, labels=labels,
        path=request.path, **values,
    )  # fmt: skip
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def refusal_page(request: web.Request, refused: Refused, title: str = "") -> web.Response:
    """A refusal with nothing to correct on the page: its message, as the API words it."""
    status = HTTP_STATUS.get(refused.code, 500)
    return render(request, "error.html", status, title=title or "无法完成", refused=refused)
