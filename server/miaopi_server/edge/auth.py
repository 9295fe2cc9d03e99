"""Who is calling, and what they may do.

Callers present a bearer token (`authorization: Bearer <token>` metadata) or, with mutual TLS,
a client certificate. A credentials file maps each credential to a principal: its role, its
window and jurisdiction, and for windows the item codes they may decide. Tokens are stored only
as SHA-256 hashes, and a presented token is looked up by its hash (never compared as text);
they are never logged.

Roles:
    window      Decide (granted items only), read its own decisions, the catalogue, the seal key
    supervisor  read and verify every decision, the catalogue, the seal key, ruleset status,
                published rule sets; dry-run decisions (DryRunDecide, nothing recorded but the
                dry run); the tasks within its jurisdiction: escalate (督办), suspend and resume
                them; a supervisor with a `department` is that department's head in its
                jurisdiction (escalations are addressed to it)
    reviewer    the tasks of its department (`*`: every department) within its jurisdiction
                (a region code prefix): list, claim, release, decide, request a supplement,
                suspend and resume; their decisions; published rule sets (the rules a decision
                was made under)
    admin       everything a supervisor may, plus ReloadRulesets (publishing) and PurgeCases
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from miaopi_server.casework.model import Task
from miaopi_server.errors import MiaopiError

READ_RPCS = frozenset({"ListItems", "GetItem", "GetSealKey", "GetConsistencyProof"})
ROLE_RPCS: dict[str, frozenset[str]] = {
    "window": READ_RPCS
    | {
        "Decide",
        "GetDecision",
        "ListDecisions",
        "GetTask",
        "SupplyMaterials",
        "WithdrawCase",
        "RateCase",
    },
    "supervisor": READ_RPCS
    | {
        "GetDecision",
        "ListDecisions",
        "VerifyAuditTrail",
        "GetRulesetStatus",
        "ListTasks",
        "GetTask",
        "GetKpis",
        "WatchAlerts",
        "EscalateTask",
        "SuspendTask",
        "ResumeTask",
        "DryRunDecide",
        "GetPublishedRules",
    },
    "reviewer": READ_RPCS
    | {
        "GetDecision",
        "GetPublishedRules",
        "ListTasks",
        "GetTask",
        "ClaimTask",
        "ReleaseTask",
        "DecideTask",
        "RequestSupplement",
        "SuspendTask",
        "ResumeTask",
    },
    "admin": READ_RPCS
    | {
        "GetDecision",
        "ListDecisions",
        "VerifyAuditTrail",
        "GetRulesetStatus",
        "ReloadRulesets",
        "PurgeCases",
        "ListTasks",
        "GetTask",
        "GetKpis",
        "WatchAlerts",
        "EscalateTask",
        "SuspendTask",
        "ResumeTask",
        "DryRunDecide",
        "GetPublishedRules",
    },
}
ALL_ITEMS = "*"
ALL_DEPARTMENTS = "*"  # a reviewer of every department (the development reviewer)


class Unauthenticated(MiaopiError):
    """No credential, or one that matches no principal."""


class PermissionDenied(MiaopiError):
    """The principal may not call this RPC, decide this item, or act as this window."""


class RateLimited(MiaopiError):
    """The principal exceeded its request rate."""


class CredentialsError(MiaopiError):
    """The credentials file is malformed."""


@dataclass(frozen=True)
class Principal:
    id: str
    role: str
    window_id: str = ""
    jurisdiction: str = ""
    items: frozenset[str] = frozenset()
    department: str = ""  # a reviewer's (ALL_DEPARTMENTS: every one); a department head's

    def may_call(self, rpc: str) -> bool:
        return rpc in ROLE_RPCS.get(self.role, frozenset())

    def may_decide(self, item_code: str) -> bool:
        return self.role in ("window", "anonymous") and (
            ALL_ITEMS in self.items or item_code in self.items
        )

    @property
    def sees_everything(self) -> bool:
        """Every decision of the trail (supervisors, admins); a window sees its own, a
        reviewer those of the tasks in its grant (may_see)."""
        return self.role not in ("window", "reviewer")


ROLE_RPCS["anonymous"] = frozenset().union(*ROLE_RPCS.values())


def within_jurisdiction(jurisdiction: str, grant: str) -> bool:
    return jurisdiction.startswith(grant)


def may_see(principal: Principal, task: Task) -> bool:
    """Whether a principal may see a case (its task, its decision and its facts)."""
    if principal.role == "reviewer":
        return principal.department in (ALL_DEPARTMENTS, task.department) and (
            within_jurisdiction(task.jurisdiction, principal.jurisdiction)
        )
    if principal.role == "window":
        return task.window_id == principal.window_id
    if principal.role == "supervisor":
        return within_jurisdiction(task.jurisdiction, principal.jurisdiction)
    return True  # admin, anonymous


def department_heads(
    principals: Iterable[Principal], department: str, jurisdiction: str
) -> tuple[str, ...]:
    heads = [
        p
        for p in principals
        if p.role == "supervisor"
        and p.department == department
        and within_jurisdiction(jurisdiction, p.jurisdiction)
    ]
    nearest = max((len(p.jurisdiction) for p in heads), default=0)
    return tuple(sorted(p.id for p in heads if len(p.jurisdiction) == nearest))


ANONYMOUS = Principal("anonymous", "anonymous", items=frozenset({ALL_ITEMS}))
"""Used only when authentication is explicitly turned off (--insecure-no-auth)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_PRINCIPAL_KEYS = {
    "id",
    "role",
    "window_id",
    "jurisdiction",
    "items",
    "token_sha256",
    "cert_common_name",
    "department",
}


class Authenticator:
    def __init__(self, by_token: Mapping[str, Principal], by_cert: Mapping[str, Principal]):
        self._by_token = dict(by_token)
        self._by_cert = dict(by_cert)
        self._by_id = {p.id: p for p in (*self._by_token.values(), *self._by_cert.values())}

    @classmethod
    def from_file(cls, path: Path) -> Authenticator:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise CredentialsError(f"{path}: {exc}") from exc
        except UnicodeDecodeError as exc:  # a ValueError: was a traceback at start-up
            raise CredentialsError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
        return cls.from_data(data, str(path))

    @classmethod
    def from_data(cls, data: Any, where: str = "credentials") -> Authenticator:
        problems: list[str] = []
        by_token: dict[str, Principal] = {}
        by_cert: dict[str, Principal] = {}
        if (
            not isinstance(data, Mapping)
            or set(data) != {"principals"}
            or not isinstance(data["principals"], Sequence)
        ):
            raise CredentialsError(f"{where}: expected a mapping with one key, principals: [...]")
        if not data["principals"]:  # a server that refuses every call is no server
            raise CredentialsError(f"{where}: principals is empty: no one could call the server")
        seen: set[str] = set()
        for i, entry in enumerate(data["principals"]):
            here = f"{where}: principals[{i}]"
            if not isinstance(entry, Mapping):
                problems.append(f"{here}: expected a mapping")
                continue
            unknown = set(entry) - _PRINCIPAL_KEYS
            if unknown:
                problems.append(f"{here}: unknown keys {sorted(unknown)}")
            pid, role = str(entry.get("id", "")), entry.get("role")
            if not pid or pid in seen:
                problems.append(f"{here}: id missing or duplicated")
            seen.add(pid)
            if role not in ROLE_RPCS:
                problems.append(f"{here}: role must be one of {sorted(ROLE_RPCS)}")
            items = entry.get("items", [])
            if role == "window" and (not entry.get("window_id") or not items):
                problems.append(f"{here}: a window needs window_id and items")
            if role == "reviewer" and (
                not entry.get("department") or not entry.get("jurisdiction")
            ):
                problems.append(f"{here}: a reviewer needs department and jurisdiction")
            token_hash = str(entry.get("token_sha256", ""))
            cert = str(entry.get("cert_common_name", ""))
            if not token_hash and not cert:
                problems.append(f"{here}: needs token_sha256 or cert_common_name")
            if token_hash and (len(token_hash) != 64 or token_hash.lower() in by_token):
                problems.append(f"{here}: token_sha256 must be a unique SHA-256 hex digest")
            principal = Principal(
                pid,
                str(role),
                str(entry.get("window_id", "")),
                str(entry.get("jurisdiction", "")),
                frozenset(str(x) for x in items),
                str(entry.get("department", "")),
            )
            if token_hash:
                by_token[token_hash.lower()] = principal
            if cert:
                by_cert[cert] = principal
        if problems:
            raise CredentialsError("; ".join(problems))
        return cls(by_token, by_cert)

    def principal(self, principal_id: str) -> Principal | None:
        """The principal of this id (its grant: jurisdiction, department), if any."""
        return self._by_id.get(principal_id)

    def department_heads(self, department: str, jurisdiction: str) -> tuple[str, ...]:
        """The head of `department` for a task in `jurisdiction`: the supervisors of that
        department whose jurisdiction covers it, the nearest level only (a district's head
        rather than the city's, when both are configured); none when no one is."""
        return department_heads(self._by_id.values(), department, jurisdiction)

    def authenticate(
        self, metadata: Sequence[tuple[str, Any]], peer_common_names: Sequence[str] = ()
    ) -> Principal:
        header = next((v for k, v in metadata if k == "authorization"), None)
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization must be 'Bearer <token>'")
            # Looked up by the token's SHA-256, not compared with every stored hash in turn
            # (that cost grew with the number of principals, on every call). The lookup's
            # timing depends on the digest only, and a caller cannot steer a digest towards a
            # stored one without the token itself, so it tells an attacker nothing.
            match = self._by_token.get(hash_token(token.strip()))
            if match is None:
                raise Unauthenticated("unknown credential")
            return match
        for name in peer_common_names:
            if name in self._by_cert:
                return self._by_cert[name]
        raise Unauthenticated("missing credential")


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class RateLimiter:
    """A token bucket per key (a principal id, or a peer address): `rate` per second, bursts
    up to `burst`. With `max_keys` the table is bounded: the key used longest ago is forgotten
    first (it starts again with a full bucket)."""

    rate: float
    burst: float
    max_keys: int = 0  # 0: unbounded (principals are a known, finite set)
    refusal: str = ""  # the RateLimited message; default: the rate
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _bucket(self, key: str) -> _Bucket:
        """The key's bucket refilled to now (caller holds the lock)."""
        now = time.monotonic()
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(self.burst, now)
            if self.max_keys and len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.rate)
        b.stamp = now
        return b

    def take(self, key: str) -> None:
        """Use one token, or raise RateLimited."""
        if self.rate <= 0:
            return
        with self._lock:
            b = self._bucket(key)
            if b.tokens < 1:
                raise RateLimited(self.refusal or f"rate limit of {self.rate:g}/s exceeded")
            b.tokens -= 1


# Failed authentications answered per peer address: a burst of 30, then one a second; past
# that a failure is RESOURCE_EXHAUSTED instead of UNAUTHENTICATED. A valid credential is
# never refused by it, so clients sharing an address (NAT, a proxy) cannot lock each other
# out; the addresses remembered are bounded.
AUTH_FAILURE_RATE = 1.0
AUTH_FAILURE_BURST = 30.0
AUTH_FAILURE_PEERS = 4096


def failure_limiter() -> RateLimiter:
    return RateLimiter(
        AUTH_FAILURE_RATE,
        AUTH_FAILURE_BURST,
        AUTH_FAILURE_PEERS,
        refusal="too many failed authentications from this address",
    )


def peer_address(peer: str) -> str:
    """The address part of a gRPC peer string ("ipv4:10.0.0.7:53122" -> "10.0.0.7"); an IPv6
    address stands for its /64, the block one host or customer is usually given, so a host
    cannot escape the limit by changing its interface identifier. Anything else (unix
    sockets) as given."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        host = rest.rsplit(":", 1)[0].strip("[]")
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            return host
        if address.ipv4_mapped is not None:  # an IPv4 client of a dual-stack listener
            return str(address.ipv4_mapped)
        if address.is_loopback:
            return str(address)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return peer


DEV_ROLES = ("window", "supervisor", "admin", "reviewer")


def write_dev_credentials(state_dir: Path) -> tuple[Path, dict[str, str]]:
    """Create development credentials under `state_dir` (owner-only): the server's file of
    token hashes and the CLI's file of tokens. Returns (credentials path, tokens by role)."""
    creds = state_dir / "credentials.yaml"
    tokens_path = state_dir / "dev-tokens.json"
    tokens: dict[str, str] = {}
    if creds.exists() and tokens_path.exists():
        tokens = json.loads(tokens_path.read_text(encoding="utf-8"))
        if set(DEV_ROLES) <= set(tokens):
            return creds, tokens
    # New, or made before a role was added (the reviewer): the missing roles get tokens,
    # the existing ones keep theirs.
    tokens = {role: tokens.get(role) or secrets.token_urlsafe(32) for role in DEV_ROLES}
    principals = [
        {
            "id": "dev-window",
            "role": "window",
            "window_id": "DEV-WINDOW-01",
            "jurisdiction": "440605",
            "items": [ALL_ITEMS],
            "token_sha256": hash_token(tokens["window"]),
        },
        {
            "id": "dev-supervisor",
            "role": "supervisor",
            "jurisdiction": "440605",
            "token_sha256": hash_token(tokens["supervisor"]),
        },
        {"id": "dev-admin", "role": "admin", "token_sha256": hash_token(tokens["admin"])},
        {
            "id": "dev-reviewer",
            "role": "reviewer",
            "department": ALL_DEPARTMENTS,
            "jurisdiction": "440605",
            "token_sha256": hash_token(tokens["reviewer"]),
        },
    ]
    state_dir.mkdir(parents=True, exist_ok=True)
    _write_private(creds, yaml.safe_dump({"principals": principals}, allow_unicode=True))
    _write_private(tokens_path, json.dumps(tokens, indent=2))
    return creds, tokens


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
