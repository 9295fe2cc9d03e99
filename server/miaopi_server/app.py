"""Wiring: settings -> catalog -> gRPC server (service, health, reflection) -> signals."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import ssl
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from miaopi_server.audit import seal
from miaopi_server.audit.chainstore import ChainStore
from miaopi_server.audit.sqlite import SQLiteAuditStore
from miaopi_server.decision.catalog import Catalog
from miaopi_server.edge.auth import (
    Authenticator,
    CredentialsError,
    RateLimiter,
    write_dev_credentials,
)
from miaopi_server.edge.console.server import ConsoleServer, start_console, tls_context
from miaopi_server.edge.review import REVIEW_SERVICE_NAME, ReviewService, add_review_to_server
from miaopi_server.edge.service import SERVICE_NAME, ApprovalService, add_to_server
from miaopi_server.errors import AuditUnavailable, RuleFileError
from miaopi_server.ops import logs, workers
from miaopi_server.ops.alerts import run_scheduler
from miaopi_server.ops.gate import GatePolicy
from miaopi_server.ops.metrics import (
    Exporter,
    Metrics,
    WorkerSetMetrics,
    serve_process,
)
from miaopi_server.ops.publish import Publisher
from miaopi_server.ops.reload import CatalogHolder, GateSettings, open_holder, watch
from miaopi_server.ops.webhook import Webhook, WebhookMisconfigured, run_deliveries
from miaopi_server.settings import Settings, number_problems, parse_args
from miaopi_server.sources.embedded import EmbeddedRegistry, RegistryInvalid
from miaopi_server.sources.http import HttpPlatform
from miaopi_server.sources.model import Provider

log = structlog.get_logger("miaopi.app")


@dataclass
class Running:
    server: grpc.aio.Server
    port: int
    health: HealthServicer
    holder: CatalogHolder
    store: ChainStore
    watcher: asyncio.Task[None] | None = None
    registry: EmbeddedRegistry | None = None
    alerts: asyncio.Task[None] | None = None
    metrics: Exporter | None = None  # this process's endpoint (not a worker's: its supervisor's)
    console: ConsoleServer | None = None
    webhook: asyncio.Task[None] | None = None

    @property
    def catalog(self) -> Catalog:
        return self.holder.current()

    async def stop(self, grace: float | None) -> None:
        for task in (self.watcher, self.alerts, self.webhook):
            if task is not None:
                task.cancel()
        if self.console is not None:
            await self.console.stop()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self.metrics is not None:
            self.metrics.close()
        self.store.close()
        self.holder.close()
        if self.registry is not None:
            self.registry.close()


def open_store(settings: Settings) -> ChainStore:
    key_path = settings.seal_key or settings.state_dir / "seal_ed25519.pem"
    sealer, created = seal.load_or_create(key_path)
    if created:
        log.warning(
            "seal.key_generated",
            path=str(key_path),
            key_id=sealer.key_id,
            note="development key created; provision a managed key in production",
        )
    previous = {}
    for pem in settings.previous_seal_keys:
        raw = seal.public_key_from_pem(pem.read_text(encoding="utf-8"))
        previous[seal.key_id_of(raw)] = raw
    if settings.store:
        from miaopi_server.ops.storeadmin import open_shared_store  # psycopg only when asked

        shared = open_shared_store(
            settings.store,
            settings.state_dir,
            sealer,
            previous,
            settings.audit_busy_timeout_ms,
            settings.reanchor_witness,
            node_name(settings),
        )
        if shared.joined is not None:
            log.warning("audit.trail_joined", store=shared.where,
                        tree_size=shared.joined.tree_size)  # fmt: skip
        return shared
    return SQLiteAuditStore(
        settings.state_dir / "audit.sqlite3",
        sealer,
        settings.audit_busy_timeout_ms,
        previous,
        reanchor=settings.reanchor_witness,
        node_id=node_name(settings),
    )


def node_name(settings: Settings) -> str:
    return settings.node_id or socket.gethostname()


def reanchor(settings: Settings) -> int:
    """`--reanchor-witness REASON`: the administrator's act after a restore (docs/AUDIT.md)."""
    store = open_store(settings)
    try:
        done = store.reanchored
        head = store.latest_head()
    finally:
        store.close()
    if done is None:
        size = head.tree_size if head is not None else 0
        print(f"miaopi-server: the audit trail agrees with its witness ({size} records): "
              "nothing re-anchored")  # fmt: skip
        return 0
    log.warning("audit.witness_reanchored", seq=done.seq, event_id=done.decision_id)
    print(f"miaopi-server: witness re-anchored, recorded as seq {done.seq} ({done.decision_id})")
    return 0


def dev_credentials_notice(where: Path, tokens: dict[str, str], terminal: bool) -> str:
    """What the first start says about the development credentials it made. The tokens are
    shown only on a terminal: stderr may be a log file or journal, and they are secrets."""
    notice = (
        f"miaopi-server: development credentials created in {where}/ (0600).\n"
        f"  The miaopi CLI reads {where / 'dev-tokens.json'} automatically.\n"
    )
    if not terminal:
        return notice + "  The tokens are in that file (not shown: stderr is not a terminal).\n"
    return notice + "".join(f"  {role:<10} token: {tok}\n" for role, tok in tokens.items())


def open_authenticator(settings: Settings) -> Authenticator | None:
    if settings.insecure_no_auth:
        log.warning(
            "auth.disabled",
            note="authentication is OFF (--insecure-no-auth): anyone reaching the port may "
            "decide any item as any window",
        )
        if settings.credentials is not None:  # given, and not used: said, not silently
            log.warning("auth.credentials_ignored", path=str(settings.credentials),
                        note="--credentials is not read with --insecure-no-auth")  # fmt: skip
        return None
    path = settings.credentials
    if path is None:
        existed = (settings.state_dir / "dev-tokens.json").exists()
        path, tokens = write_dev_credentials(settings.state_dir)
        if not existed:
            notice = dev_credentials_notice(path.parent, tokens, sys.stderr.isatty())
            print(notice, file=sys.stderr, flush=True)
    return Authenticator.from_file(path)


def check_tls_files(settings: Settings) -> None:
    """--tls-cert/--tls-key (and --tls-client-ca) as PEM the server can serve with, checked
    before anything starts. gRPC only says that it could not bind: a key file holding
    something else was 'cannot listen on 127.0.0.1:50051: Failed to bind to address'."""
    if not (settings.tls_cert and settings.tls_key):
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:  # password "": an encrypted key (which gRPC cannot use) is refused, never prompted for
        context.load_cert_chain(settings.tls_cert, settings.tls_key, password="")
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise OSError(
            f"--tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: not a PEM "
            f"certificate and its unencrypted private key: {exc}"
        ) from None
    if settings.tls_client_ca:
        try:
            context.load_verify_locations(cafile=settings.tls_client_ca)
        except (OSError, ValueError) as exc:
            raise OSError(
                f"--tls-client-ca {settings.tls_client_ca}: not PEM CA certificates: {exc}"
            ) from None


def server_credentials(settings: Settings) -> grpc.ServerCredentials:
    assert settings.tls_cert and settings.tls_key
    ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def console_tls(settings: Settings) -> ssl.SSLContext | None:
    """The console serves HTTPS with the gRPC server's certificate when it has one, and
    accepts client certificates of the gRPC port's client CA (certificate sign-in)."""
    if settings.tls_cert and settings.tls_key:
        return tls_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    return None


class SourcesMisconfigured(Exception):
    """The shared-data options do not go together (or name an unusable token file)."""


def open_platform(settings: Settings) -> HttpPlatform | None:
    """The data-sharing platform of `--sources-url`, or None without one. Its options are
    checked here, at start, so a misconfigured server never runs on window-typed data alone."""
    if not settings.sources_url:
        if settings.sources_token_file or settings.sources_ca:
            raise SourcesMisconfigured("--sources-token-file and --sources-ca need --sources-url")
        return None
    if settings.registry is not None:
        raise SourcesMisconfigured("give --registry or --sources-url, not both")
    if settings.elicense_deadline_ms < 1:
        raise SourcesMisconfigured("--elicense-deadline-ms must be at least 1")
    token = ""
    if settings.sources_token_file is not None:
        token = settings.sources_token_file.read_text(encoding="utf-8").strip()
        if not token or any(c.isspace() for c in token):
            raise SourcesMisconfigured(
                f"{settings.sources_token_file}: should hold one token (no spaces), not "
                + ("nothing" if not token else "several words")
            )
    try:
        platform = HttpPlatform(settings.sources_url, token, settings.sources_ca)
    except ValueError as exc:
        raise SourcesMisconfigured(str(exc)) from None
    parts = urllib.parse.urlsplit(platform.base_url)
    log.info(
        "sources.platform",
        url=f"{parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path}",  # no user:pass
        token=bool(token),
        ca=str(settings.sources_ca) if settings.sources_ca else "system",
    )
    return platform


def open_webhook(settings: Settings) -> Webhook | None:
    """The escalation webhook of the options, checked at start (WebhookMisconfigured)."""
    return Webhook.configure(
        settings.webhook_url,
        settings.webhook_secret_file,
        settings.webhook_timeout_seconds,
        settings.webhook_retry_seconds,
    )


def gate_settings(settings: Settings) -> GateSettings:
    return GateSettings(settings.state_dir, GatePolicy(settings.gate_seconds, settings.gate_cases))


async def create_server(settings: Settings) -> Running:
    """Build and start a server; `settings.listen` may use port 0 (the bound port is returned).
    The rule set goes live through the gate (ops/gate.py), like every later one."""
    check_tls_files(settings)
    platform = open_platform(settings)  # checked first: a misconfiguration stops the start
    hook = open_webhook(settings)
    holder = await open_holder(settings.rulesets, gate_settings(settings), settings.grace_seconds)
    registry: EmbeddedRegistry | None = None
    try:
        registry = EmbeddedRegistry(settings.registry) if settings.registry else None
        if registry is not None:
            log.info("sources.registry", data_dir=str(settings.registry), version=registry.version)
        store = open_store(settings)
    except BaseException:
        if registry is not None:
            registry.close()
        holder.close()
        raise
    provider: Provider | None = platform or registry
    metrics = Metrics() if settings.metrics_listen else None
    if metrics is not None:  # before the first write: the start's publication is a batch too
        store.on_batch = metrics.audit_batch
    try:
        # The set now serving goes on the record (archived) unless it already is.
        await holder.record_start(Publisher(store))
        authenticator = open_authenticator(settings)
    except BaseException:  # e.g. a bad credentials file: nothing opened so far stays open
        store.close()
        if registry is not None:
            registry.close()
        holder.close()
        raise
    exporter = None
    if metrics is not None:
        holder.on_reload = metrics.reloaded
        if settings.worker_index < 0:  # a worker's metrics are its supervisor's to serve
            try:
                exporter = serve_process(settings.metrics_listen, metrics, store.open_tasks)
            except BaseException:
                store.close()
                if registry is not None:
                    registry.close()
                holder.close()
                raise
    server = grpc.aio.server(
        options=[
            # A second server on a busy port must fail, not share it; --workers share on purpose.
            ("grpc.so_reuseport", int(settings.worker_index >= 0)),
            ("grpc.max_receive_message_length", settings.max_request_bytes),
            ("grpc.server_handshake_timeout_ms", int(settings.handshake_timeout_seconds * 1000)),
            ("grpc.max_connection_idle_ms", int(settings.idle_connection_seconds * 1000)),
            ("grpc.max_allowed_incoming_connections", settings.max_connections),
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_seconds * 1000)),
            (
                "grpc.max_connection_age_grace_ms",
                int(settings.connection_age_grace_seconds * 1000),
            ),
        ]
    )
    service = ApprovalService(
        holder,
        store,
        node_name(settings),
        authenticator,
        RateLimiter(settings.rate_per_second, settings.rate_burst),
        relay=workers.Relay(settings.state_dir) if settings.worker_index >= 0 else None,
        provider=provider,
        licences_deadline=settings.elicense_deadline_ms / 1000,
        metrics=metrics,
    )
    add_to_server(service, server)
    review = ReviewService(
        service,
        store,
        node_name(settings),
        settings.claim_idle_seconds,
        response_working_hours=settings.response_working_hours,
        authenticator=authenticator,
    )
    add_review_to_server(review, server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            REVIEW_SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    try:
        if settings.tls_cert and settings.tls_key:
            port = server.add_secure_port(settings.listen, server_credentials(settings))
        else:
            port = server.add_insecure_port(settings.listen)
    except RuntimeError as exc:  # grpcio raises on a failed bind
        if exporter is not None:
            exporter.close()
        store.close()
        holder.close()
        if registry is not None:
            registry.close()
        raise OSError(f"cannot listen on {settings.listen}: {exc}") from exc
    await server.start()
    console = None
    if settings.console_listen and settings.worker_index <= 0:  # sessions live in one process
        try:
            console = await start_console(
                settings.console_listen, service, review, store, console_tls(settings)
            )
        except OSError:
            await server.stop(None)
            store.close()
            holder.close()
            if registry is not None:
                registry.close()
            raise
    await health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    watcher = None
    # With --workers, worker 0 watches and relays what it published to the others.
    if settings.watch_seconds > 0 and settings.worker_index <= 0:
        relay = workers.Relay(settings.state_dir) if settings.worker_index == 0 else None
        watcher = asyncio.create_task(watch(holder, settings.watch_seconds, relay=relay))
    alerts = None
    if settings.alert_interval_seconds > 0:
        alerts = asyncio.create_task(
            run_scheduler(store, settings.alert_interval_seconds, node_name(settings))
        )
    deliveries = asyncio.create_task(run_deliveries(store, hook)) if hook is not None else None
    return Running(
        server, port, health, holder, store, watcher, registry, alerts,
        metrics=exporter, console=console, webhook=deliveries,
    )  # fmt: skip


async def serve(settings: Settings, supervisor: int = 0) -> None:
    """Serve until SIGTERM / SIGINT. A worker (settings.worker_index >= 0) stops by itself
    when its `supervisor` process is gone."""
    running = await create_server(settings)
    # Everything loaded so far (the catalog above all) lives as long as the process: moved out
    # of the collector's reach, full collections no longer pause requests to rescan it.
    gc.freeze()
    host = settings.listen.rsplit(":", 1)[0]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[object]] = set()

    is_worker = settings.worker_index >= 0
    # A worker's SIGHUP is the act its supervisor (or a fellow worker) wrote down.
    acts = workers.SighupActs(settings.state_dir) if is_worker else None

    def on_sighup() -> None:
        act = acts.next() if acts is not None else ""
        task = loop.create_task(running.holder.reload("SIGHUP", "signal", act))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    log.info(
        "worker.started" if is_worker else "server.started",
        listen=f"{host}:{running.port}",
        items=running.catalog.codes,
        rulesets=str(settings.rulesets),
    )
    for w in running.catalog.warnings:
        log.warning("rulefile.warning", diagnostic=str(w))
    if is_worker:
        workers.announce_ready()
        orphan_watch = asyncio.create_task(_stop_when_orphaned(stop, supervisor))

    await stop.wait()
    if is_worker:
        orphan_watch.cancel()
    log.info("server.stopping", grace_seconds=settings.grace_seconds)
    await running.stop(settings.grace_seconds)
    log.info("server.stopped")


async def _stop_when_orphaned(stop: asyncio.Event, supervisor: int) -> None:
    while not workers.orphaned(supervisor):
        await asyncio.sleep(1)
    log.warning("worker.orphaned", note="the supervisor is gone; stopping")
    stop.set()


def _worker_set_metrics(settings: Settings) -> WorkerSetMetrics:
    """The supervisor's metrics endpoint: the workers' sum, and the task gauges read from the
    store it keeps open for them."""
    store = open_store(settings)
    try:
        return WorkerSetMetrics(settings.metrics_listen, settings.state_dir, store)
    except BaseException:
        store.close()
        raise


def _prepare_shared_state(settings: Settings) -> None:
    """What every worker shares, created once before they start: seal key, audit database,
    development credentials (printed once)."""
    open_store(settings).close()
    open_authenticator(settings)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["migrate"]:  # the shared audit database's schema (docs/AUDIT.md)
        from miaopi_server.ops import storeadmin

        return storeadmin.main(args[1:])
    settings = parse_args(args)
    if problems := number_problems(settings):
        print(f"miaopi-server: {'; '.join(problems)}", file=sys.stderr)
        return 2
    worker = {"worker": settings.worker_index} if settings.worker_index >= 0 else {}
    logs.configure(settings.log_format, settings.log_level, extra=worker)
    try:
        if settings.reanchor_witness:
            return reanchor(settings)
        if settings.workers > 1:
            return workers.supervise(
                args,
                settings.listen,
                settings.workers,
                settings.state_dir,
                lambda: _prepare_shared_state(settings),
                (lambda: _worker_set_metrics(settings)) if settings.metrics_listen else None,
            )
        # A worker notes its supervisor first thing, so it can tell when that one is gone.
        asyncio.run(serve(settings, os.getppid() if settings.worker_index >= 0 else 0))
    except RuleFileError as exc:
        for d in exc.diagnostics:
            log.error("rulefile.error", diagnostic=str(d))
        print(f"miaopi-server: rule files failed to load:\n{exc}", file=sys.stderr)
        return 2
    except (
        OSError,
        CredentialsError,
        AuditUnavailable,
        RegistryInvalid,
        SourcesMisconfigured,
        WebhookMisconfigured,
    ) as exc:
        # AuditUnavailable here: the audit database could not be opened or migrated at start
        # (AuditSchemaTooNew: a newer server migrated it).
        log.error("server.failed", error=str(exc))
        print(f"miaopi-server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
