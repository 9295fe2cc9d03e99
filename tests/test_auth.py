"""Identity and authorisation on a real server: tokens, roles, item grants, window binding,
rate limits, TLS and mutual TLS."""

from __future__ import annotations

import datetime as dt
import json
import stat
import time

import grpc
import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf import json_format

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_server.edge.auth import (
    AUTH_FAILURE_BURST,
    AUTH_FAILURE_RATE,
    Authenticator,
    CredentialsError,
    RateLimited,
    RateLimiter,
    Unauthenticated,
    hash_token,
    peer_address,
    write_dev_credentials,
)
from miaopi_server.ops.logs import LogSampler
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.support import (
    BUSINESS,
    BUSINESS_MATERIALS,
    EXAMPLES,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    TOKENS,
    credentials,
    resident_id,
    with_facts,
)


def decide_req(code="GF00012000", facts=SENIOR, materials=SENIOR_MATERIALS, window_id=""):
    req = pb.DecideRequest(
        item_code=code,
        materials=materials,
        window=pb.Window(window_id=window_id, operator_id="op-9"),
    )
    json_format.ParseDict(facts, req.facts)
    return req


def md(who: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {TOKENS[who]}")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    live = LiveServer(
        Settings(
            listen="127.0.0.1:0",
            rulesets=RULESETS,
            state_dir=tmp / "state",
            credentials=credentials(tmp / "creds.yaml"),
            rate_per_second=0,
        ),
        auth=True,
    )
    yield live
    live.stop()


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.target) as ch:
        yield pb_grpc.ApprovalServiceStub(ch)


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


class TestAuthentication:
    @pytest.mark.parametrize(
        "metadata",
        [
            [],
            [("authorization", "Bearer nope")],
            [("authorization", TOKENS["w1"])],
            [("authorization", "Basic dzE6eA==")],
            [("authorization", "Bearer ")],
        ],
    )
    def test_missing_or_unknown_credential(self, stub, metadata):
        """No credential, an unknown token or a malformed header is UNAUTHENTICATED."""
        assert (
            code_of(lambda: stub.ListItems(pb.ListItemsRequest(), metadata=metadata))
            == grpc.StatusCode.UNAUTHENTICATED
        )

    def test_health_needs_no_credential(self, server):
        """The standard health service stays open for load balancers."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(server.target) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
        assert resp.status == health_pb2.HealthCheckResponse.SERVING

    def test_token_never_logged(self, stub):
        """Refusals are logged with the reason, never with the token."""
        with structlog.testing.capture_logs() as logs:
            code_of(
                lambda: stub.ListItems(
                    pb.ListItemsRequest(), metadata=[("authorization", "Bearer s3cr3t-x")]
                )
            )
            stub.ListItems(pb.ListItemsRequest(), metadata=md("w1"))
        text = json.dumps(logs)
        assert "s3cr3t-x" not in text and TOKENS["w1"] not in text
        assert any(e["event"] == "auth.refused" for e in logs)


class TestAuthorisation:
    def test_window_decides_granted_item(self, stub):
        """A window decides its granted item; the record names the authenticated principal."""
        d = stub.Decide(decide_req(), metadata=md("w1")).decision
        assert d.outcome == pb.OUTCOME_APPROVE
        assert (d.receipt.window.window_id, d.receipt.window.principal_id) == ("W-GC-01", "w1")
        assert d.receipt.window.operator_id == "op-9"

    def test_window_refused_other_items(self, stub):
        """An item outside the window's grant is PERMISSION_DENIED."""
        req = decide_req("XK00051000", BUSINESS, BUSINESS_MATERIALS)
        assert (
            code_of(lambda: stub.Decide(req, metadata=md("w1")))
            == grpc.StatusCode.PERMISSION_DENIED
        )

    def test_window_field_must_match_identity(self, stub):
        """A window field in the body that disagrees with the credential is refused."""
        req = decide_req(window_id="W-DL-02")
        assert (
            code_of(lambda: stub.Decide(req, metadata=md("w1")))
            == grpc.StatusCode.PERMISSION_DENIED
        )
        assert stub.Decide(decide_req(window_id="W-GC-01"), metadata=md("w1")).decision.receipt

    @pytest.mark.parametrize(
        ("who", "rpc", "allowed"),
        [
            ("w1", "ReloadRulesets", False),
            ("w1", "VerifyAuditTrail", False),
            ("sup", "VerifyAuditTrail", True),
            ("sup", "ReloadRulesets", False),
            ("sup", "Decide", False),
            ("adm", "ReloadRulesets", True),
            ("adm", "Decide", False),
            ("adm", "GetRulesetStatus", True),
            ("w1", "GetSealKey", True),
        ],
    )
    def test_role_matrix(self, stub, who, rpc, allowed):
        """Each role may call exactly its RPCs."""
        requests = {
            "ReloadRulesets": pb.ReloadRulesetsRequest(),
            "VerifyAuditTrail": pb.VerifyAuditTrailRequest(),
            "Decide": decide_req(),
            "GetRulesetStatus": pb.GetRulesetStatusRequest(),
            "GetSealKey": pb.GetSealKeyRequest(),
        }
        call = lambda: getattr(stub, rpc)(requests[rpc], metadata=md(who))  # noqa: E731
        if allowed:
            call()
        else:
            assert code_of(call) == grpc.StatusCode.PERMISSION_DENIED

    def test_windows_read_only_their_own_decisions(self, stub):
        """A window reads its own decisions; another window's are refused; supervisors see all."""
        mine = stub.Decide(decide_req(), metadata=md("w2")).decision.decision_id
        get = pb.GetDecisionRequest(decision_id=mine)
        assert stub.GetDecision(get, metadata=md("w2")).decision.decision_id == mine
        assert (
            code_of(lambda: stub.GetDecision(get, metadata=md("w1")))
            == grpc.StatusCode.PERMISSION_DENIED
        )
        assert stub.GetDecision(get, metadata=md("sup")).decision.decision_id == mine
        listed = stub.ListDecisions(pb.ListDecisionsRequest(page_size=1000), metadata=md("w1"))
        assert listed.decisions and all(
            d.receipt.window.window_id == "W-GC-01" for d in listed.decisions
        )
        other = pb.ListDecisionsRequest(window_id="W-DL-02")
        assert (
            code_of(lambda: stub.ListDecisions(other, metadata=md("w1")))
            == grpc.StatusCode.PERMISSION_DENIED
        )
        everyone = stub.ListDecisions(pb.ListDecisionsRequest(page_size=1000), metadata=md("sup"))
        assert {d.receipt.window.window_id for d in everyone.decisions} >= {"W-GC-01", "W-DL-02"}


class TestIdempotencyPerWindow:
    def test_another_windows_request_id_is_not_an_answer(self, stub, server):
        """Window B reusing window A's request_id with the same case gets a decision of its
        own (its window on the receipt, its record), never A's."""
        req = decide_req()
        req.request_id = "shared-id-1"
        a = stub.Decide(req, metadata=md("w1")).decision
        b = stub.Decide(req, metadata=md("w2")).decision
        assert a.decision_id != b.decision_id
        assert (a.receipt.window.window_id, a.receipt.window.principal_id) == ("W-GC-01", "w1")
        assert (b.receipt.window.window_id, b.receipt.window.principal_id) == ("W-DL-02", "w2")
        assert b.receipt.seq != a.receipt.seq
        # each window's retry still answers with its own original
        assert stub.Decide(req, metadata=md("w1")).decision == a
        assert stub.Decide(req, metadata=md("w2")).decision == b

    def test_a_window_cannot_pre_claim_anothers_request_ids(self, stub):
        """B sending a request_id first does not make A's later request with that id (and a
        different case) fail: ALREADY_EXISTS only within one window."""
        claim = decide_req(facts=with_facts(SENIOR, applicant__hukou_region="440604"))
        claim.request_id = "future-id-7"
        stub.Decide(claim, metadata=md("w2"))
        mine = decide_req()
        mine.request_id = "future-id-7"
        d = stub.Decide(mine, metadata=md("w1")).decision
        assert d.outcome == pb.OUTCOME_APPROVE and d.receipt.window.window_id == "W-GC-01"
        other = decide_req(facts=with_facts(SENIOR, applicant__name="李四"))
        other.request_id = "future-id-7"
        assert (
            code_of(lambda: stub.Decide(other, metadata=md("w1"))) == grpc.StatusCode.ALREADY_EXISTS
        )


class TestRateLimit:
    def test_token_bucket(self, tmp_path):
        """Past its burst a principal gets RESOURCE_EXHAUSTED; others are unaffected."""
        live = LiveServer(
            Settings(
                listen="127.0.0.1:0",
                rulesets=RULESETS,
                state_dir=tmp_path,
                credentials=credentials(tmp_path / "c.yaml"),
                rate_per_second=1,
                rate_burst=5,
            ),
            auth=True,
        )
        try:
            with grpc.insecure_channel(live.target) as ch:
                stub = pb_grpc.ApprovalServiceStub(ch)
                codes = []
                for _ in range(12):
                    try:
                        stub.GetSealKey(pb.GetSealKeyRequest(), metadata=md("slow"))
                        codes.append("OK")
                    except grpc.RpcError as exc:
                        codes.append(exc.code().name)
                assert codes[:5] == ["OK"] * 5
                assert "RESOURCE_EXHAUSTED" in codes[5:]
                stub.GetSealKey(pb.GetSealKeyRequest(), metadata=md("sup"))
        finally:
            live.stop()


class TestCredentialsFile:
    @pytest.mark.parametrize(
        "data",
        [
            {"principals": [{"id": "x", "role": "god", "token_sha256": "0" * 64}]},
            {"principals": [{"id": "x", "role": "window", "token_sha256": "0" * 64}]},
            {"principals": [{"id": "x", "role": "admin"}]},
            {"principals": [{"id": "x", "role": "admin", "token_sha256": "abc"}]},
            {"principals": [{"id": "x", "role": "admin", "token_sha256": "0" * 64, "colour": 1}]},
            {
                "principals": [
                    {"id": "x", "role": "admin", "token_sha256": "ab" * 32},
                    {"id": "y", "role": "admin", "token_sha256": "AB" * 32},
                ]
            },
            {"users": []},
        ],
    )
    def test_malformed_refused(self, data):
        """Bad roles, windows without grants, missing or malformed credentials, unknown keys."""
        with pytest.raises(CredentialsError):
            Authenticator.from_data(data)

    def test_each_token_finds_its_own_principal_among_many(self):
        """Tokens are looked up by their SHA-256: with hundreds of principals each token
        names its own (a digest written in capitals too), and a near miss names none."""
        tokens = [f"token-{i:04d}-{'x' * 20}" for i in range(300)]
        entries = [
            {
                "id": f"w{i}",
                "role": "window",
                "window_id": f"W{i}",
                "items": ["GF00012000"],
                "token_sha256": hash_token(t).upper() if i % 2 else hash_token(t),
            }
            for i, t in enumerate(tokens)
        ]
        auth = Authenticator.from_data({"principals": entries})
        for i, t in enumerate(tokens):
            assert auth.authenticate([("authorization", f"Bearer {t}")]).id == f"w{i}"
        with pytest.raises(Unauthenticated):
            auth.authenticate([("authorization", f"Bearer {tokens[7]}y")])

    def test_dev_credentials_owner_only_and_stable(self, tmp_path):
        """Development credentials are created once, 0600, holding hashes for the server."""
        creds, tokens = write_dev_credentials(tmp_path)
        assert set(tokens) == {"window", "supervisor", "admin", "reviewer"}
        for path in (creds, tmp_path / "dev-tokens.json"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert tokens["admin"] not in creds.read_text(encoding="utf-8")
        assert write_dev_credentials(tmp_path)[1] == tokens
        auth = Authenticator.from_file(creds)
        assert auth.authenticate([("authorization", f"Bearer {tokens['window']}")]).role == "window"

    def test_dev_credentials_made_before_the_reviewer_gain_it(self, tmp_path):
        """A state directory from before the development reviewer: the reviewer is added, the
        other roles keep their tokens (a running CLI setup keeps working)."""
        creds, tokens = write_dev_credentials(tmp_path)
        old = {k: v for k, v in tokens.items() if k != "reviewer"}
        (tmp_path / "dev-tokens.json").write_text(json.dumps(old), encoding="utf-8")
        _, upgraded = write_dev_credentials(tmp_path)
        assert {k: upgraded[k] for k in old} == old and upgraded["reviewer"]
        reviewer = Authenticator.from_file(creds).authenticate(
            [("authorization", f"Bearer {upgraded['reviewer']}")]
        )
        assert (reviewer.role, reviewer.department, reviewer.jurisdiction) == (
            "reviewer", "*", "440605",
        )  # fmt: skip

    def test_a_credentials_file_without_principals_is_refused(self, tmp_path):
        """No principal: every call would be refused, so the server does not start on it."""
        empty = tmp_path / "creds.yaml"
        empty.write_text("principals: []\n", encoding="utf-8")
        with pytest.raises(CredentialsError, match="principals is empty"):
            Authenticator.from_file(empty)

    def test_credentials_given_with_auth_off_are_said_to_be_ignored(self, tmp_path):
        from structlog.testing import capture_logs

        from miaopi_server.app import open_authenticator
        from miaopi_server.settings import Settings

        settings = Settings(insecure_no_auth=True, credentials=tmp_path / "creds.yaml")
        with capture_logs() as logs:
            assert open_authenticator(settings) is None
        said = [e["event"] for e in logs]
        assert said == ["auth.disabled", "auth.credentials_ignored"]
        with capture_logs() as logs:
            assert open_authenticator(Settings(insecure_no_auth=True)) is None
        assert [e["event"] for e in logs] == ["auth.disabled"]

    def test_a_credentials_file_that_is_not_text_is_named(self, tmp_path):
        """Bytes that are not UTF-8 (a binary file given by mistake) were a UnicodeDecodeError
        traceback from miaopi-server; now the file and the byte are named."""
        bad = tmp_path / "creds.yaml"
        bad.write_bytes(b"principals: []\n\xff\xfe")
        with pytest.raises(CredentialsError, match=r"creds.yaml: not UTF-8 text \(byte 15\)"):
            Authenticator.from_file(bad)

    def test_tls_files_that_are_not_pem_are_named_before_anything_starts(self, tmp_path):
        """A certificate or key file holding something else was 'cannot listen on HOST:PORT:
        Failed to bind to address' (gRPC's words for any bad credential), after the rule set
        and the audit store were opened; a directory was the bare '[Errno 21]'. Now each
        names the options and the files, before anything is opened."""
        import asyncio
        import threading

        from miaopi_server.app import create_server

        junk = tmp_path / "junk.pem"
        junk.write_bytes(b"\xff\xfe not pem")
        before = {t.name for t in threading.enumerate()}
        for cert, key in ((junk, junk), (tmp_path, tmp_path)):
            settings = Settings(
                listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path / "s",
                tls_cert=cert, tls_key=key,
            )  # fmt: skip
            with pytest.raises(OSError, match=r"^--tls-cert .* / --tls-key .*: not a PEM cert"):
                asyncio.run(create_server(settings))
        assert not (tmp_path / "s").exists()  # nothing opened, no store made
        assert {t.name for t in threading.enumerate()} == before

    def test_a_bad_credentials_file_leaves_nothing_running(self, tmp_path):
        """create_server refuses a malformed credentials file, and what it had opened by then
        (the audit store's writer and checkpoint threads, the rule set) is closed again."""
        import asyncio
        import threading

        from miaopi_server.app import create_server

        bad = tmp_path / "creds.yaml"
        bad.write_text("principals: [{id: x, role: god}]\n", encoding="utf-8")
        before = {t.name for t in threading.enumerate()}
        settings = Settings(
            listen="127.0.0.1:0", rulesets=RULESETS, state_dir=tmp_path / "s", credentials=bad
        )
        with pytest.raises(CredentialsError):
            asyncio.run(create_server(settings))
        after = {t.name for t in threading.enumerate()}
        assert not {n for n in after - before if n.startswith("audit")}


# -- TLS ---------------------------------------------------------------------------------------


def _cert(subject: str, issuer_key, issuer_name, key, ca: bool = False, san: bool = False):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        import ipaddress

        b = b.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return b.sign(issuer_key or key, hashes.SHA256())


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("miaopi test CA", None, None, ca_key, ca=True)
    for who, san in (("server", True), ("window-cert-01", False), ("stranger", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(who, ca_key, ca.subject, key, san=san)
        (d / f"{who}.pem").write_bytes(_pem(cert))
        (d / f"{who}.key").write_bytes(_pem(key))
    (d / "ca.pem").write_bytes(_pem(ca))
    return d


@pytest.mark.slow
class TestTLS:
    def test_tls_with_token(self, pki, tmp_path):
        """Over TLS a token still authenticates; a plaintext client cannot talk to it."""
        live = LiveServer(
            Settings(
                listen="127.0.0.1:0",
                rulesets=RULESETS,
                state_dir=tmp_path,
                credentials=credentials(tmp_path / "c.yaml"),
                tls_cert=pki / "server.pem",
                tls_key=pki / "server.key",
            ),
            auth=True,
        )
        try:
            creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes())
            with grpc.secure_channel(live.target, creds) as ch:
                d = pb_grpc.ApprovalServiceStub(ch).Decide(decide_req(), metadata=md("w1"))
            assert d.decision.outcome == pb.OUTCOME_APPROVE
            with grpc.insecure_channel(live.target) as ch:
                assert code_of(
                    lambda: pb_grpc.ApprovalServiceStub(ch).ListItems(
                        pb.ListItemsRequest(), metadata=md("w1"), timeout=3
                    )
                ) in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        finally:
            live.stop()

    def test_mutual_tls_identifies_the_window(self, pki, tmp_path):
        """With mutual TLS a client certificate is the credential; no certificate, no call."""
        live = LiveServer(
            Settings(
                listen="127.0.0.1:0",
                rulesets=RULESETS,
                state_dir=tmp_path,
                credentials=credentials(tmp_path / "c.yaml"),
                tls_cert=pki / "server.pem",
                tls_key=pki / "server.key",
                tls_client_ca=pki / "ca.pem",
            ),
            auth=True,
        )
        try:

            def channel(who: str | None) -> grpc.Channel:
                kw = {}
                if who:
                    kw = {
                        "private_key": (pki / f"{who}.key").read_bytes(),
                        "certificate_chain": (pki / f"{who}.pem").read_bytes(),
                    }
                creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), **kw)
                return grpc.secure_channel(live.target, creds)

            with channel("window-cert-01") as ch:
                d = pb_grpc.ApprovalServiceStub(ch).Decide(decide_req()).decision
            assert (d.receipt.window.window_id, d.receipt.window.principal_id) == (
                "W-CERT",
                "cert-window",
            )
            with channel("stranger") as ch:
                assert (
                    code_of(
                        lambda: pb_grpc.ApprovalServiceStub(ch).ListItems(pb.ListItemsRequest())
                    )
                    == grpc.StatusCode.UNAUTHENTICATED
                )
            with channel(None) as ch:
                assert code_of(
                    lambda: pb_grpc.ApprovalServiceStub(ch).ListItems(
                        pb.ListItemsRequest(), timeout=3
                    )
                ) in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        finally:
            live.stop()


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory):
    """Secure by default: no credentials file given, so development credentials are made."""
    state = tmp_path_factory.mktemp("dev")
    live = LiveServer(Settings(listen="127.0.0.1:0", rulesets=RULESETS, state_dir=state), auth=True)
    yield live, state
    live.stop()


class TestCliWithAuth:
    def test_cli_picks_the_role_token(self, dev_server, capsys):
        """The CLI uses the development window token to decide and the admin one to reload."""
        from miaopi_client.cli import main

        live, state = dev_server
        base = ["--target", live.target, "--dev-tokens", str(state / "dev-tokens.json")]
        facts = state / "case.json"
        facts.write_text(json.dumps(SENIOR, ensure_ascii=False), encoding="utf-8")
        assert (
            main(
                [
                    *base,
                    "decide",
                    "--item",
                    "GF00012000",
                    "--facts",
                    str(facts),
                    "--materials",
                    ",".join(SENIOR_MATERIALS),
                    "--json",
                ]
            )
            == 0
        )
        decision = json.loads(capsys.readouterr().out)
        assert decision["receipt"]["window"]["principal_id"] == "dev-window"
        assert main([*base, "reload"]) == 0
        assert "rules reloaded" in capsys.readouterr().out
        assert main([*base, "status"]) == 0

    def test_review_list_works_out_of_the_box(self, dev_server, capsys):
        """`make run` then `miaopi review list`: the development reviewer (every department,
        the development window's jurisdiction) sees the task the window's decision opened."""
        from miaopi_client.cli import main

        live, state = dev_server
        base = ["--target", live.target, "--dev-tokens", str(state / "dev-tokens.json")]
        facts = state / "review-case.json"
        facts.write_text(
            json.dumps(
                with_facts(SENIOR, applicant__id_number=resident_id("1915-06-01")),
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
        decide = [*base, "decide", "--item", "GF00012000", "--facts", str(facts),
                  "--materials", ",".join(SENIOR_MATERIALS), "--json"]  # fmt: skip
        assert main(decide) == 0
        decision = json.loads(capsys.readouterr().out)
        assert decision["outcome"] == "MANUAL_REVIEW"
        assert main([*base, "review", "list"]) == 0
        assert decision["decision_id"] in capsys.readouterr().out
        assert main([*base, "review", "claim", decision["decision_id"]]) == 0
        assert "by dev-reviewer" in capsys.readouterr().out

    def test_readme_replay_against_an_authenticated_server(self, dev_server, capsys):
        """The README's `miaopi replay CASES --target HOST:PORT` against `make run`'s server:
        cases go as the authenticated window (a fixed replay window was PERMISSION_DENIED)."""
        from miaopi_client.cli import main

        live, state = dev_server
        base = ["--dev-tokens", str(state / "dev-tokens.json")]
        assert main([*base, "replay", str(EXAMPLES), "--target", live.target, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["failed"] == 0 and report["passed"] == report["total"] > 0
        # naming another window than the credential's is still refused
        code = main([*base, "replay", str(EXAMPLES), "--target", live.target, "--window-id", "W-X"])
        assert code != 0 and "PERMISSION_DENIED" in capsys.readouterr().err

    def test_cli_without_credentials_is_refused(self, dev_server, capsys):
        """Without a token the server refuses, and the CLI says so in one line."""
        from miaopi_client.cli import main

        live, state = dev_server
        code = main(["--target", live.target, "--dev-tokens", str(state / "missing.json"), "items"])
        assert code != 0
        assert "UNAUTHENTICATED" in capsys.readouterr().err


class TestDevelopmentCredentialsNotice:
    def test_tokens_never_reach_a_non_terminal_stderr(self, tmp_path):
        """Started with stderr to a pipe (a log file, a journal), the first start names the
        tokens file but prints no token; the JSON log lines stay parseable around it."""
        import subprocess
        import sys

        proc = subprocess.Popen(
            [sys.executable, "-m", "miaopi_server.app", "--listen", "127.0.0.1:0",
             "--rulesets", str(RULESETS), "--state-dir", str(tmp_path / "state"),
             "--log-format", "json", "--watch", "0"],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        seen = []
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                seen.append(line)
                if '"server.started"' in line:
                    break
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        text = "".join(seen)
        tokens = json.loads((tmp_path / "state" / "dev-tokens.json").read_text(encoding="utf-8"))
        assert tokens and not any(t in text for t in tokens.values())
        assert "dev-tokens.json" in text and "not shown" in text

    def test_tokens_are_shown_on_a_terminal(self, tmp_path):
        """On a terminal the notice lists each role's token once, so a developer can copy it."""
        from miaopi_server.app import dev_credentials_notice

        tokens = {"window": "tok-w", "supervisor": "tok-s", "admin": "tok-a"}
        shown = dev_credentials_notice(tmp_path, tokens, terminal=True)
        assert all(shown.count(t) == 1 for t in tokens.values())
        hidden = dev_credentials_notice(tmp_path, tokens, terminal=False)
        assert not any(t in hidden for t in tokens.values())


class TestRefusedAuthentication:
    def test_failures_limited_per_peer_and_logged_sampled(self, tmp_path):
        """A flood of bad credentials from one address: after the burst its failures are
        RESOURCE_EXHAUSTED, another address is unaffected, a valid credential from the same
        address is still served (windows behind one NAT or proxy cannot lock each other out),
        and the log gets a few lines, not one a call."""
        live = LiveServer(
            Settings(
                listen="[::]:0",
                rulesets=RULESETS,
                state_dir=tmp_path,
                credentials=credentials(tmp_path / "c.yaml"),
                rate_per_second=0,
            ),
            auth=True,
        )
        port = live.running.port
        bad = [("authorization", "Bearer guess")]
        try:
            with (
                grpc.insecure_channel(f"127.0.0.1:{port}") as ch4,
                grpc.insecure_channel(f"[::1]:{port}") as ch6,
                structlog.testing.capture_logs() as logs,
            ):
                v4, v6 = pb_grpc.ApprovalServiceStub(ch4), pb_grpc.ApprovalServiceStub(ch6)

                def guess(stub):
                    return code_of(lambda: stub.GetSealKey(pb.GetSealKeyRequest(), metadata=bad))

                codes = [guess(v4).name for _ in range(200)]
                burst = int(AUTH_FAILURE_BURST)
                assert codes[:burst] == ["UNAUTHENTICATED"] * burst
                assert codes.count("UNAUTHENTICATED") <= burst + 2  # refill during the loop
                assert codes[-20:] == ["RESOURCE_EXHAUSTED"] * 20
                v4.GetSealKey(pb.GetSealKeyRequest(), metadata=md("sup"))  # still served
                assert guess(v6) == grpc.StatusCode.UNAUTHENTICATED  # its own budget
                time.sleep(1.2 / AUTH_FAILURE_RATE)  # one failure's worth refilled
                assert guess(v4) == grpc.StatusCode.UNAUTHENTICATED
            refused = [e for e in logs if e["event"] == "auth.refused"]
            # Two kinds, each at most 20 lines in 10 s (LogSampler): 40 lines for 200+ refusals;
            # what is left out is counted on the next line of its kind.
            kinds = [e["error"] for e in refused]
            assert (kinds.count("Unauthenticated"), kinds.count("RateLimited")) == (20, 20)
            # The later refusals (::1's included) fell after each kind's 20 lines.
            assert {e["peer"] for e in refused} == {"127.0.0.1"}
            assert "guess" not in json.dumps(logs)
        finally:
            live.stop()

    def test_log_sampler_counts_what_it_leaves_out(self):
        now = [0.0]
        sampler = LogSampler(lines=3, interval=10.0, max_keys=2, clock=lambda: now[0])
        assert [sampler.admit("a") for _ in range(8)] == [0, 0, 0, None, None, None, None, None]
        assert sampler.admit("b") == 0  # other kinds have their own budget
        now[0] = 10.0
        assert [sampler.admit("a") for _ in range(4)] == [5, 0, 0, None]
        sampler.admit("c")  # a third key: "b", seen longest ago, is forgotten
        assert [sampler.admit("a"), sampler.admit("b")] == [None, 0]

    def test_failure_table_is_bounded(self):
        limiter = RateLimiter(1.0, 2.0, max_keys=3, refusal="too many")
        for peer in ("p1", "p2", "p3", "p4"):
            limiter.take(peer)
            limiter.take(peer)
        with pytest.raises(RateLimited, match="too many"):
            limiter.take("p4")
        limiter.take("p1")  # forgotten: starts again with a full bucket
        assert len(limiter._buckets) == 3

    @pytest.mark.parametrize(
        ("peer", "key"),
        [
            ("ipv4:10.0.0.7:53122", "10.0.0.7"),
            ("ipv6:[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"),
            ("ipv6:[2001:db8:1:2:ffff::9]:443", "2001:db8:1:2::/64"),
            ("ipv6:[::ffff:10.1.2.3]:80", "10.1.2.3"),
            ("ipv6:[::1]:5000", "::1"),
            ("unix:/run/miaopi.sock", "unix:/run/miaopi.sock"),
        ],
    )
    def test_peer_address(self, peer, key):
        """A client is its address (an IPv6 host its /64), never its port."""
        assert peer_address(peer) == key
