"""The console calls the gRPC servicers' own methods, in process, with a context of its own.

A page is a client of the same service as a window system: the request message goes to the
servicer method the gRPC server would run, which authenticates the signed-in principal's
credential (ApprovalService.guard: role, rate limit, failed sign-ins per address), checks the
grant and calls the domain. Its refusal (context.abort_with_status) comes back as `Refused`,
carrying the status code, the message and the BadRequest field violations as sent over gRPC.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.rpc import error_details_pb2, status_pb2

from miaopi_server.edge.status import to_status

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class Credential:
    """What the principal signed in with: a bearer token, or a client certificate's common
    name (read from the TLS connection of each request, never stored)."""

    token: str = ""
    cert_common_name: str = ""


class Refused(Exception):
    """A servicer's refusal: its gRPC status code, message and field violations."""

    def __init__(
        self, code: grpc.StatusCode, message: str, fields: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields: dict[str, str] = fields or {}

    @classmethod
    def from_status(cls, status: grpc.Status) -> Refused:
        fields: dict[str, str] = {}
        for key, value in status.trailing_metadata or ():
            if key != STATUS_DETAILS_KEY:
                continue
            for detail in status_pb2.Status.FromString(value).details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    for v in bad.field_violations:  # several on one field: all of them
                        fields[v.field] = "；".join(
                            filter(None, (fields.get(v.field), v.description))
                        )
        return cls(status.code, status.details, fields)

    @classmethod
    def of(cls, exc: BaseException) -> Refused:
        """A domain error as the gRPC edge would have reported it."""
        return cls.from_status(to_status(exc))


def grpc_peer(remote: str | None) -> str:
    """An HTTP client's address as gRPC spells a peer, so the per-address limit on failed
    authentications (edge/auth.peer_address) treats it alike."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return f"unix:{remote or '?'}"
    return f"ipv4:{address}:0" if address.version == 4 else f"ipv6:[{address}]:0"


@dataclass
class ConsoleContext:
    """The part of grpc.aio.ServicerContext the servicers use."""

    credential: Credential
    remote: str
    on_write: Callable[[Any], Awaitable[None]] | None = None
    _metadata: tuple[tuple[str, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        token = self.credential.token
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def peer(self) -> str:
        return grpc_peer(self.remote)

    def auth_context(self) -> dict[str, list[bytes]]:
        name = self.credential.cert_common_name
        return {"x509_common_name": [name.encode()]} if name else {}

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        raise Refused.from_status(status)

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        raise Refused(code, details)

    async def write(self, message: Any) -> None:
        assert self.on_write is not None, "write() on a unary call"
        await self.on_write(message)
