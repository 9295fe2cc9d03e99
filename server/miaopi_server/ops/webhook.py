"""The escalation webhook: notifications from the durable outbox, POSTed at least once.

Each pass leases the due rows of the outbox (audit/sqlite_outbox.py: one process of several
takes each), POSTs each body as JSON with an HMAC-SHA256 signature over the exact bytes
(`X-Miaopi-Signature: sha256=<hex>`, key: the secret file's contents) and the alert seq as
`X-Miaopi-Delivery` (the receiver deduplicates on it), and marks it delivered on a 2xx answer.
Anything else (another status, a redirect: never followed, a refused connection, a timeout,
an answer cut short) is retried after retry_seconds * 2^(attempts-1), at most MAX_BACKOFF; a
notification is never dropped. A restart finds the undelivered rows where it left them. Logs:
seq, attempt, status; never the body.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import http.client
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from miaopi_server.audit.chainstore import ChainStore
from miaopi_server.audit.sqlite_outbox import Delivery
from miaopi_server.clock import utc_now

log = structlog.get_logger("miaopi.webhook")

SIGNATURE_HEADER = "X-Miaopi-Signature"
DELIVERY_HEADER = "X-Miaopi-Delivery"
MAX_BACKOFF = dt.timedelta(minutes=10)
BATCH = 20
POLL_SECONDS = 0.5


class WebhookMisconfigured(Exception):
    """--webhook-url / --webhook-secret-file do not go together or cannot be used."""


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: bytes
    timeout: float = 5.0
    retry_seconds: float = 2.0

    @classmethod
    def configure(
        cls, url: str, secret_file: Path | None, timeout: float, retry_seconds: float
    ) -> Webhook | None:
        """The webhook of the options, checked at start; None without a URL."""
        if not url:
            if secret_file is not None:
                raise WebhookMisconfigured("--webhook-secret-file needs --webhook-url")
            return None
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookMisconfigured(f"--webhook-url must be an http(s) URL, not {url!r}")
        if secret_file is None:
            raise WebhookMisconfigured("--webhook-url needs --webhook-secret-file (signing key)")
        try:
            secret = secret_file.read_bytes().strip()
        except OSError as exc:
            raise WebhookMisconfigured(f"--webhook-secret-file: {exc}") from None
        if len(secret) < 16:
            raise WebhookMisconfigured(
                f"{secret_file}: the webhook secret must be at least 16 bytes"
            )
        if timeout <= 0 or retry_seconds <= 0:
            raise WebhookMisconfigured("--webhook-timeout and --webhook-retry must be positive")
        return cls(url, secret, timeout, retry_seconds)

    @property
    def shown_url(self) -> str:
        """The URL for logs: no user:password, no query (it may carry a key)."""
        p = urllib.parse.urlsplit(self.url)
        return f"{p.scheme}://{p.hostname}{f':{p.port}' if p.port else ''}{p.path}"

    def backoff(self, attempts: int) -> dt.timedelta:
        seconds = self.retry_seconds * 2 ** min(max(attempts - 1, 0), 30)
        return min(dt.timedelta(seconds=seconds), MAX_BACKOFF)

    @property
    def lease(self) -> dt.timedelta:
        """Long enough for one POST to finish or time out, with room to mark it."""
        return dt.timedelta(seconds=self.timeout * 2 + 10)


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is a failed attempt: urllib would follow 301/302/303 with a GET without the
    body (and the signed notification would count as delivered), or re-send it elsewhere."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(hook: Webhook, delivery: Delivery) -> None:
    """POST one notification; returns on a 2xx answer, raises OSError (or an
    http.client.HTTPException: a broken answer) otherwise."""
    body = delivery.body.encode()
    request = urllib.request.Request(
        hook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "miaopi-server",
            SIGNATURE_HEADER: signature(hook.secret, body),
            DELIVERY_HEADER: str(delivery.alert_seq),
        },
    )
    with _OPENER.open(request, timeout=hook.timeout) as answer:
        answer.read()


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, urllib.error.URLError):
        return _why(exc.reason) if isinstance(exc.reason, BaseException) else str(exc.reason)
    return type(exc).__name__


def deliver_due(store: ChainStore, hook: Webhook, owner: str, now: dt.datetime) -> int:
    """One pass: lease what is due and send it; how many were delivered."""
    delivered = 0
    for d in store.take_deliveries(owner, now, hook.lease, BATCH):
        try:
            post(hook, d)
        # urllib's errors are OSErrors; a bad answer ValueError or HTTPException
        # (IncompleteRead, BadStatusLine): each fails this row's attempt only.
        except (OSError, ValueError, http.client.HTTPException) as exc:
            why = _why(exc)
            retry = utc_now() + hook.backoff(d.attempts)
            store.delivery_failed(d.id, owner, retry, why)
            log.warning(
                "webhook.failed", alert_seq=d.alert_seq, attempt=d.attempts, error=why,
                retry_at=retry.isoformat(),
            )  # fmt: skip
            continue
        if store.delivered(d.id, owner, utc_now()):
            delivered += 1
            log.info("webhook.delivered", alert_seq=d.alert_seq, attempt=d.attempts)
    return delivered


def owner_id() -> str:
    """This process's name on the leases it takes."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def run_deliveries(
    store: ChainStore,
    hook: Webhook,
    clock: Callable[[], dt.datetime] = utc_now,
    poll_seconds: float = POLL_SECONDS,
) -> None:
    """Deliver until cancelled (at once first: what a restart left undelivered)."""
    owner = owner_id()
    log.info("webhook.started", url=hook.shown_url)
    while True:
        try:
            await asyncio.to_thread(deliver_due, store, hook, owner, clock())
        except Exception:  # the store may be busy or closing; the next pass catches up
            log.exception("webhook.pass_failed")
        await asyncio.sleep(poll_seconds)
