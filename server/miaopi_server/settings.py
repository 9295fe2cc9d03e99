"""Everything the server is configured with: one frozen object, built once at the entry
point (from the command line) and passed down."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from miaopi_server.ops.metrics import split_listen


@dataclass(frozen=True)
class Settings:
    """Everything the server is configured with, loaded once at the entry point."""

    listen: str = "127.0.0.1:50051"
    rulesets: Path = Path("rulesets")
    state_dir: Path = Path("var")
    # The audit store: "" is SQLite under state_dir (one node); a postgresql:// DSN is a
    # database many nodes share (docs/AUDIT.md); the witness and seal key stay in state_dir.
    store: str = ""
    seal_key: Path | None = None  # default: <state_dir>/seal_ed25519.pem
    previous_seal_keys: tuple[Path, ...] = ()  # public keys (PEM) of rotated-out seal keys
    node_id: str = ""  # default: the host name
    audit_busy_timeout_ms: int = 5000  # how long a write waits for a locked database
    log_format: str = "auto"
    log_level: str = "info"
    grace_seconds: float = 5.0
    # Poll the rules directory this often and publish what changed; 0 (the default) = no file
    # watch: publishing is a deliberate act (ReloadRulesets / `miaopi reload`, SIGHUP).
    watch_seconds: float = 0.0
    # The rule-set gate (ops/gate.py), always on: a new set is checked in a separate process
    # with this deadline and this many generated cases per item version before it goes live.
    # The shipped set passes in under a second; 1,000 items at 50 cases take about 20 s.
    gate_seconds: float = 60.0
    gate_cases: int = 50
    credentials: Path | None = None  # default: development credentials under state_dir
    insecure_no_auth: bool = False  # explicit opt-out; warned about on every start
    rate_per_second: float = 200.0  # per principal; 0 = unlimited
    rate_burst: float = 400.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: clients must present a certificate (mutual TLS)
    max_request_bytes: int = 1 << 20
    # Connections (per process): one that has not finished its HTTP/2 (and TLS) handshake in
    # this time is closed, so half-open connections cannot pile up; an idle one is closed
    # after idle_connection_seconds; beyond max_connections new ones are closed at once.
    handshake_timeout_seconds: float = 10.0
    idle_connection_seconds: float = 300.0
    max_connections: int = 1000
    # Every connection is closed (GOAWAY, then at most the grace later) after this age, so a
    # client holding streams open that never send a request cannot keep its slots; windows'
    # clients reconnect by themselves.
    max_connection_age_seconds: float = 600.0
    connection_age_grace_seconds: float = 30.0
    # Shared government data (四免): a data directory of the embedded registry (see
    # data/registry/README.md); None: no sources, every case decides on its own facts.
    registry: Path | None = None
    # Or a data-sharing platform over HTTP/JSON (sources/http.py, docs/SOURCES.md): its base
    # URL, a file holding its bearer token (a file, so the token is not in `ps`), a CA file to
    # verify its certificate against (default: the system's), and how long the e-license
    # library may take (a bound source's deadline is its rule file's `deadline_ms`).
    sources_url: str = ""
    sources_token_file: Path | None = None
    sources_ca: Path | None = None
    elicense_deadline_ms: int = 1000
    workers: int = 1  # server processes sharing the port and the audit trail (ops/workers.py)
    worker_index: int = -1  # set by the supervisor for each worker; -1 = a standalone server
    reanchor_witness: str = ""  # the reason: re-anchor the audit witness, record it, and exit
    # A reviewer's claim on a task lapses after this long without an action of theirs, so
    # another reviewer may take it (no case stuck with an absent reviewer).
    claim_idle_seconds: float = 1800.0
    alert_interval_seconds: float = 60.0  # the alert scheduler's pass (0: no scheduler)
    response_working_hours: float = 8.0  # KPIs: a task claimed within N office hours responded
    # Prometheus metrics over HTTP on HOST:PORT (ops/metrics.py); "" (the default): none.
    metrics_listen: str = ""
    console_listen: str = ""  # the web console's HOST:PORT (docs/CONSOLE.md); "" = off
    # Escalation notifications (ops/webhook.py): POSTed, signed with the secret file's key,
    # from the durable outbox, retried with exponential backoff from webhook_retry_seconds.
    webhook_url: str = ""
    webhook_secret_file: Path | None = None
    webhook_timeout_seconds: float = 5.0
    webhook_retry_seconds: float = 2.0


# Server processes under one supervisor: each is a Python process using about a core, and a
# node has far fewer; a mistyped count must not fork thousands.
MAX_WORKERS = 64


def number_problems(settings: Settings) -> list[str]:
    """Numbers no setting means, each named (all at once). Before, each started the server
    and meant something else: --rate -1 or nan no limit, --burst below 1 every request
    refused, --claim-idle -5 every claim lapsed at once, --alert-interval -1 and --watch -1
    off, --response-hours -3 no task ever responded to."""
    checks = (
        ("--rate", settings.rate_per_second, 0.0, "at least 0 (0: unlimited)"),
        ("--watch", settings.watch_seconds, 0.0, "at least 0 (0: off)"),
        ("--alert-interval", settings.alert_interval_seconds, 0.0, "at least 0 (0: off)"),
        ("--claim-idle", settings.claim_idle_seconds, None, "more than 0"),
        ("--response-hours", settings.response_working_hours, None, "more than 0"),
    )
    problems = []
    for flag, value, least, wanted in checks:
        if not math.isfinite(value) or (value < least if least is not None else value <= 0):
            problems.append(f"{flag} must be {wanted}, not {value}")
    # gRPC's channel arguments are C ints: the timers in milliseconds. nan and inf were a
    # ValueError / OverflowError traceback, 1e12 seconds an OverflowError from gRPC; -1 bytes
    # or connections meant no limit at all.
    longest = (2**31 - 1) // 1000
    timers = (
        ("--handshake-timeout", settings.handshake_timeout_seconds, False),
        ("--idle-timeout", settings.idle_connection_seconds, False),
        ("--max-connection-age", settings.max_connection_age_seconds, False),
        ("--connection-age-grace", settings.connection_age_grace_seconds, True),
    )
    for flag, value, zero in timers:
        if not (math.isfinite(value) and (value >= 0 if zero else value > 0) and value <= longest):
            low = "from 0" if zero else "more than 0 and"
            problems.append(f"{flag} must be {low} up to {longest} seconds, not {value}")
    for flag, count in (
        ("--max-request-bytes", settings.max_request_bytes),
        ("--max-connections", settings.max_connections),
    ):
        if not 1 <= count <= 2**31 - 1:
            problems.append(f"{flag} must be from 1 to {2**31 - 1}, not {count}")
    if settings.gate_seconds <= 0 or settings.gate_cases < 1:
        problems.append(
            "--gate-seconds must be positive and --gate-cases at least 1 "
            "(the rule-set check cannot be turned off)"
        )
    if not 1 <= settings.workers <= MAX_WORKERS:  # 10,000 began starting 10,000 processes
        problems.append(f"--workers must be from 1 to {MAX_WORKERS}, not {settings.workers}")
    burst = settings.rate_burst
    if settings.rate_per_second > 0 and not (math.isfinite(burst) and burst >= 1):
        problems.append(f"--burst must be at least 1 while --rate limits, not {burst}")
    return problems


def _host_port(listen: str) -> str:
    try:
        split_listen(listen)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return listen


def _listen(listen: str) -> str:
    """--listen: HOST:PORT, or a Unix socket gRPC serves ("unix:PATH", one process only)."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return listen
    return _host_port(listen)


def parse_args(argv: list[str] | None) -> Settings:
    p = argparse.ArgumentParser(prog="miaopi-server", description="秒批 instant approval server")
    # Checked here: gRPC took a port past 65535 modulo 65536 (99999 served on 34463).
    p.add_argument("--listen", type=_listen, help="HOST:PORT (port 0 picks a free one)")
    p.add_argument("--rulesets", type=Path, help="rule files directory")
    p.add_argument(
        "--state-dir",
        type=Path,
        help="where the server keeps its state (audit trail, keys)",
    )
    p.add_argument(
        "--store",
        metavar="DSN",
        help="audit store shared by several nodes: postgresql://USER@HOST:PORT/DB (migrated "
        "with `miaopi-server migrate --store DSN`); default: SQLite in --state-dir",
    )
    p.add_argument(
        "--seal-key",
        type=Path,
        help="Ed25519 private key (PEM); default <state-dir>/seal_ed25519.pem",
    )
    p.add_argument(
        "--previous-seal-key",
        dest="previous_seal_keys",
        metavar="PREVIOUS_SEAL_KEY",
        type=Path,
        action="append",
        help="public key (PEM) of a rotated-out sealing key; repeatable",
    )
    p.add_argument("--node-id", help="name recorded in the audit trail (default: host name)")
    p.add_argument(
        "--reanchor-witness",
        metavar="REASON",
        help="after restoring the audit database from a backup: accept it, record that (with "
        "REASON and the head it abandons) in the trail, re-sign the witness, and exit",
    )
    p.add_argument(
        "--watch",
        dest="watch_seconds",
        type=float,
        metavar="SECONDS",
        help="publish rule files when they change, polling this often (default 0: off; "
        "publish deliberately with `miaopi reload`, the ReloadRulesets RPC or SIGHUP)",
    )
    p.add_argument(
        "--gate-seconds",
        type=float,
        metavar="SECONDS",
        help="deadline for checking a new rule set in a separate process before it goes "
        "live (at start-up and on every reload); a set that takes longer is refused",
    )
    p.add_argument(
        "--gate-cases",
        type=int,
        metavar="N",
        help="generated cases per item version that the check decides and compares with "
        "the reference semantics (at least 1)",
    )
    p.add_argument(
        "--credentials",
        type=Path,
        help="principals file (YAML); default: development credentials in --state-dir",
    )
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="turn authentication OFF (development only; warned on every start)",
    )
    p.add_argument(
        "--rate",
        dest="rate_per_second",
        metavar="RATE",
        type=float,
        help="requests per second per principal (0 = unlimited)",
    )
    p.add_argument("--burst", dest="rate_burst", metavar="BURST", type=float)
    p.add_argument("--tls-cert", type=Path, help="server certificate (PEM) to serve TLS")
    p.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    p.add_argument(
        "--tls-client-ca",
        type=Path,
        help="CA (PEM) for client certificates; makes mutual TLS mandatory",
    )
    p.add_argument("--max-request-bytes", type=int)
    p.add_argument(
        "--handshake-timeout",
        dest="handshake_timeout_seconds",
        type=float,
        metavar="SECONDS",
        help="close a connection that has not completed its handshake in this time",
    )
    p.add_argument(
        "--idle-timeout",
        dest="idle_connection_seconds",
        type=float,
        metavar="SECONDS",
        help="close a connection idle this long",
    )
    p.add_argument(
        "--max-connections", type=int, help="open connections per process; more are refused"
    )
    p.add_argument(
        "--max-connection-age",
        dest="max_connection_age_seconds",
        type=float,
        metavar="SECONDS",
        help="close every connection after this age (clients reconnect)",
    )
    p.add_argument(
        "--connection-age-grace",
        dest="connection_age_grace_seconds",
        type=float,
        metavar="SECONDS",
        help="how long calls in flight may finish after a connection reached its age",
    )
    p.add_argument(
        "--registry",
        type=Path,
        metavar="DIR",
        help="data directory of the embedded registry of shared data (四免); default: none, "
        "cases decide on their own facts",
    )
    p.add_argument(
        "--sources-url",
        metavar="URL",
        help="base URL of a data-sharing platform (HTTP/JSON, docs/SOURCES.md) to look shared "
        "data up in, instead of --registry",
    )
    p.add_argument(
        "--sources-token-file",
        type=Path,
        metavar="FILE",
        help="file holding the platform's bearer token",
    )
    p.add_argument(
        "--sources-ca",
        type=Path,
        metavar="PEM",
        help="CA certificate(s) to verify an https platform against (default: the system's)",
    )
    p.add_argument(
        "--elicense-deadline-ms",
        type=int,
        metavar="MS",
        help="how long the e-license library may take to answer (default 1000); a bound "
        "source waits its rule file's deadline_ms",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="server processes sharing the port and the audit trail, 1 to 64 (one per core; "
        "rate limits apply per process)",
    )
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    p.add_argument(
        "--claim-idle",
        dest="claim_idle_seconds",
        type=float,
        metavar="SECONDS",
        help="a review claim lapses after this long without action (default 1800)",
    )
    p.add_argument(
        "--alert-interval",
        dest="alert_interval_seconds",
        type=float,
        metavar="SECONDS",
        help="scan the tasks for overdue, due-soon and override alerts this often "
        "(default 60; 0 turns the scheduler off)",
    )
    p.add_argument(
        "--response-hours",
        dest="response_working_hours",
        type=float,
        metavar="HOURS",
        help="KPIs: a review task claimed within this many office hours (09:00-17:00 on "
        "working days) of opening counts as responded (default 8)",
    )
    p.add_argument(
        "--metrics-listen",
        type=_host_port,
        metavar="HOST:PORT",
        help="serve Prometheus metrics over HTTP here (port 0 picks a free one); with "
        "--workers the supervisor serves the whole set's; default: no metrics",
    )
    p.add_argument(
        "--console-listen",
        type=_host_port,
        metavar="HOST:PORT",
        help="serve the web console for reviewers and supervisors here (docs/CONSOLE.md; "
        "off by default; with --workers only the first worker serves it)",
    )
    p.add_argument(
        "--webhook-url",
        dest="webhook_url",
        metavar="URL",
        help="POST escalation (督办) notifications here (JSON, signed; docs/CASEWORK.md)",
    )
    p.add_argument(
        "--webhook-secret-file",
        dest="webhook_secret_file",
        type=Path,
        metavar="FILE",
        help="the HMAC-SHA256 key of the webhook's X-Miaopi-Signature (at least 16 bytes)",
    )
    p.add_argument(
        "--webhook-timeout",
        dest="webhook_timeout_seconds",
        type=float,
        metavar="SECONDS",
        help="how long one webhook POST may take (default 5)",
    )
    p.add_argument(
        "--webhook-retry",
        dest="webhook_retry_seconds",
        type=float,
        metavar="SECONDS",
        help="first retry delay of a failed webhook POST, doubled each time up to 10 "
        "minutes (default 2)",
    )
    p.add_argument("--log-format", choices=("auto", "json", "console"))
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    # Every option's dest is a Settings field and nothing has an argparse default: what the
    # command line leaves out keeps the one default, the dataclass's.
    given = {k: v for k, v in vars(p.parse_args(argv)).items() if v is not None}
    if "previous_seal_keys" in given:
        given["previous_seal_keys"] = tuple(given["previous_seal_keys"])
    return Settings(**given)
