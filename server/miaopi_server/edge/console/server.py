"""The console's HTTP server: aiohttp in the gRPC server's own event loop, on its own port
(`--console-listen`), TLS with the server's certificate when it has one."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import jinja2
import structlog
from aiohttp import web

from miaopi_server.audit.chainstore import ChainStore
from miaopi_server.edge.console import notice_pages, review_pages, signin, supervision
from miaopi_server.edge.console.base import CONSOLE, Console
from miaopi_server.edge.console.security import add_headers, crash_guard, session_and_csrf
from miaopi_server.edge.review import ReviewService
from miaopi_server.edge.service import ApprovalService

log = structlog.get_logger("miaopi.console")
HERE = Path(__file__).parent
MAX_FORM_BYTES = 64 * 1024


def add_routes(app: web.Application) -> None:
    """Every page, one line each."""
    r = app.router
    r.add_get("/", signin.home)
    r.add_get("/signin", signin.form)
    r.add_post("/signin", signin.submit)
    r.add_post("/signout", signin.signout)
    r.add_get("/queue", review_pages.queue)
    r.add_get("/open", review_pages.open_case)
    r.add_get("/cases/{decision_id}", review_pages.case)
    r.add_post("/cases/{decision_id}/{action}", review_pages.act)
    r.add_get("/cases/{decision_id}/notice", notice_pages.page)
    r.add_get("/cases/{decision_id}/notice.pdf", notice_pages.pdf)
    r.add_get("/notice.css", notice_pages.stylesheet)
    r.add_get("/supervision", supervision.page)
    r.add_get("/supervision/alerts", supervision.alert_stream)
    r.add_get("/supervision/kpis.csv", supervision.kpi_csv)
    r.add_static("/static", HERE / "static")


def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def build_app(console: Console) -> web.Application:
    app = web.Application(
        middlewares=[crash_guard, session_and_csrf], client_max_size=MAX_FORM_BYTES
    )
    app[CONSOLE] = console
    app.on_response_prepare.append(add_headers)
    add_routes(app)
    return app


@dataclass
class ConsoleServer:
    runner: web.AppRunner
    console: Console
    port: int

    async def stop(self) -> None:
        for task in list(self.console.streams):  # open alert streams never end by themselves
            task.cancel()
        await self.runner.cleanup()


def tls_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """The console's TLS. With `client_ca` it asks every client for a certificate, optional
    (token sign-in keeps working) but, when one is presented, verified against that CA only,
    never the system's trust store: a certificate of another issuer ends the handshake, as
    on the gRPC port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


async def start_console(
    listen: str,
    approval: ApprovalService,
    review: ReviewService,
    store: ChainStore,
    tls: ssl.SSLContext | None = None,
) -> ConsoleServer:
    """Serve the console on `listen` (HOST:PORT; port 0 picks one, returned)."""
    host, _, port = listen.rpartition(":")
    console = Console(
        approval, review, store, templates(), secure=tls is not None,
        certificates=tls is not None and tls.verify_mode != ssl.CERT_NONE,
    )  # fmt: skip
    # Handlers are cancelled when their client goes (an alert stream waits for ever); no
    # access log: the services log what was done, and paths carry only opaque ids anyway.
    runner = web.AppRunner(
        build_app(console), handler_cancellation=True, access_log=None, shutdown_timeout=2.0
    )
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]") or None, int(port), ssl_context=tls)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot listen on {listen} (console): {exc}") from exc
    bound = int(runner.addresses[0][1])
    log.info(
        "console.started", listen=f"{host}:{bound}", tls=tls is not None,
        client_certificates=console.certificates,
    )  # fmt: skip
    return ConsoleServer(runner, console, bound)
