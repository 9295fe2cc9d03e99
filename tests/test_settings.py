"""The server's settings: one default per setting, whether set in code or on the command line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from miaopi_server.settings import Settings, number_problems, parse_args


class TestSettings:
    def test_no_flags_is_the_dataclass_default(self):
        """`miaopi-server` with no flags runs with exactly Settings(): no file watch (publishing
        is deliberate)."""
        assert parse_args([]) == Settings()
        assert Settings().watch_seconds == 0

    def test_every_flag_reaches_its_field(self):
        """Each flag sets its own field (nothing copied by hand to the wrong one)."""
        settings = parse_args(
            [
                "--listen", "127.0.0.1:0", "--rulesets", "r", "--state-dir", "s",
                "--seal-key", "k.pem", "--previous-seal-key", "a.pem",
                "--previous-seal-key", "b.pem", "--node-id", "节点1", "--watch", "3",
                "--credentials", "c.yaml", "--insecure-no-auth", "--rate", "5", "--burst", "7",
                "--tls-cert", "cert.pem", "--tls-key", "key.pem", "--tls-client-ca", "ca.pem",
                "--max-request-bytes", "99", "--workers", "3", "--worker-index", "1",
                "--gate-seconds", "9.5", "--gate-cases", "7",
                "--log-format", "json", "--log-level", "debug", "--handshake-timeout", "2",
                "--idle-timeout", "60", "--max-connections", "10", "--registry", "data",
                "--reanchor-witness", "从备份恢复", "--claim-idle", "90",
                "--max-connection-age", "120", "--connection-age-grace", "5",
                "--sources-url", "https://share.example", "--sources-token-file", "t",
                "--sources-ca", "sca.pem", "--elicense-deadline-ms", "700",
                "--response-hours", "4", "--alert-interval", "5",
                "--store", "postgresql://miaopi@db:5432/audit",
                "--metrics-listen", "127.0.0.1:9464",
                "--console-listen", "127.0.0.1:8080",
                "--webhook-url", "https://hooks.example/督办", "--webhook-secret-file", "w.key",
                "--webhook-timeout", "3", "--webhook-retry", "0.5",
            ]
        )  # fmt: skip
        assert settings == Settings(
            listen="127.0.0.1:0",
            rulesets=Path("r"),
            state_dir=Path("s"),
            store="postgresql://miaopi@db:5432/audit",
            seal_key=Path("k.pem"),
            previous_seal_keys=(Path("a.pem"), Path("b.pem")),
            node_id="节点1",
            watch_seconds=3.0,
            gate_seconds=9.5,
            gate_cases=7,
            credentials=Path("c.yaml"),
            insecure_no_auth=True,
            rate_per_second=5.0,
            rate_burst=7.0,
            tls_cert=Path("cert.pem"),
            tls_key=Path("key.pem"),
            tls_client_ca=Path("ca.pem"),
            max_request_bytes=99,
            workers=3,
            worker_index=1,
            log_format="json",
            log_level="debug",
            handshake_timeout_seconds=2.0,
            idle_connection_seconds=60.0,
            max_connections=10,
            reanchor_witness="从备份恢复",
            registry=Path("data"),
            claim_idle_seconds=90.0,
            max_connection_age_seconds=120.0,
            connection_age_grace_seconds=5.0,
            sources_url="https://share.example",
            sources_token_file=Path("t"),
            sources_ca=Path("sca.pem"),
            elicense_deadline_ms=700,
            response_working_hours=4.0,
            alert_interval_seconds=5.0,
            metrics_listen="127.0.0.1:9464",
            console_listen="127.0.0.1:8080",
            webhook_url="https://hooks.example/督办",
            webhook_secret_file=Path("w.key"),
            webhook_timeout_seconds=3.0,
            webhook_retry_seconds=0.5,
        )
        # Every field but the audit busy timeout and the grace period has a flag above.
        changed = {
            f.name for f in dataclasses.fields(Settings) if getattr(settings, f.name) != f.default
        }
        assert changed == {f.name for f in dataclasses.fields(Settings)} - {
            "audit_busy_timeout_ms",
            "grace_seconds",
        }


def test_a_listen_address_grpc_cannot_bind_as_written_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """gRPC took a port past 65535 modulo 65536: `--listen 127.0.0.1:99999` served on 34463.
    --listen is checked as --metrics-listen and --console-listen are, and the message no
    longer names --metrics-listen for the others."""
    assert parse_args(["--listen", "[::]:50051"]).listen == "[::]:50051"
    assert parse_args(["--listen", "unix:/run/miaopi.sock"]).listen == "unix:/run/miaopi.sock"
    for flag in ("--listen", "--metrics-listen", "--console-listen"):
        for bad in ("127.0.0.1:99999", "garbage", "127.0.0.1:²"):
            with pytest.raises(SystemExit) as exc:
                parse_args([flag, bad])
            assert exc.value.code == 2
            err = capsys.readouterr().err
            assert f"argument {flag}: needs HOST:PORT (a port from 0 to 65535), not {bad!r}" in err


def test_numbers_no_setting_means_are_named_all_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each of these started the server before, meaning something else (number_problems)."""
    from miaopi_server.app import main

    code = main([
        "--rate", "-1", "--claim-idle", "-5", "--alert-interval", "-1", "--watch", "nan",
        "--response-hours", "-3", "--listen", "127.0.0.1:0",
    ])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    for words in (
        "--rate must be at least 0 (0: unlimited), not -1.0",
        "--claim-idle must be more than 0, not -5.0",
        "--alert-interval must be at least 0 (0: off), not -1.0",
        "--watch must be at least 0 (0: off), not nan",
        "--response-hours must be more than 0, not -3.0",
    ):
        assert words in err
    assert main(["--rate", "5", "--burst", "0.5"]) == 2
    assert "--burst must be at least 1 while --rate limits, not 0.5" in capsys.readouterr().err
    assert number_problems(Settings()) == []
    for workers in (0, -1, 65, 10_000):  # 10,000 began starting as many processes
        assert number_problems(Settings(workers=workers)) == [
            f"--workers must be from 1 to 64, not {workers}"
        ]
    assert number_problems(Settings(workers=64)) == []
    gate = "--gate-seconds must be positive and --gate-cases at least 1 (the rule-set check"
    for off in (Settings(gate_seconds=0), Settings(gate_cases=0)):
        assert [p for p in number_problems(off) if p.startswith(gate)] == [
            f"{gate} cannot be turned off)"
        ]
    unlimited = Settings(rate_per_second=0, rate_burst=0, alert_interval_seconds=0)
    assert number_problems(unlimited) == []


def test_connection_limits_grpc_cannot_take(capsys: pytest.CaptureFixture[str]) -> None:
    """nan or inf seconds were a ValueError / OverflowError traceback turning them into
    milliseconds, 1e12 an OverflowError from gRPC's C int; -1 bytes or connections meant no
    limit. Named, all at once, exit 2."""
    from miaopi_server.app import main

    code = main([
        "--handshake-timeout", "nan", "--idle-timeout", "1e12", "--max-connection-age", "inf",
        "--connection-age-grace", "-1", "--max-request-bytes", "-1", "--max-connections", "0",
    ])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    for words in (
        "--handshake-timeout must be more than 0 and up to 2147483 seconds, not nan",
        "--idle-timeout must be more than 0 and up to 2147483 seconds, not 1000000000000.0",
        "--max-connection-age must be more than 0 and up to 2147483 seconds, not inf",
        "--connection-age-grace must be from 0 up to 2147483 seconds, not -1.0",
        "--max-request-bytes must be from 1 to 2147483647, not -1",
        "--max-connections must be from 1 to 2147483647, not 0",
    ):
        assert words in err
    assert number_problems(Settings(connection_age_grace_seconds=0)) == []
