"""Signing in to the web console with a client certificate, over real TLS on a real server
started with --tls-cert/--tls-key/--tls-client-ca: the console asks for a certificate
(optional), verifies it against the client CA, and signs in the principal the credentials file
maps its common name to, as gRPC does. A session signed in that way is good only on
connections presenting that certificate; a certificate of another issuer never gets past the
handshake; token sign-in works beside it."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import ipaddress
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from structlog.testing import capture_logs

from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi.v1 import review_pb2 as rpb
from miaopi.v1 import review_pb2_grpc as rpb_grpc
from tests.conftest import LiveServer
from tests.console_support import (
    CHROMIUM,
    CIVIL,
    FLAGS,
    WAIT_MS,
    Http,
    console_server,
    console_url,
    md,
    review_case,
)

# Certificates of the client CA, by common name; the credentials file knows the first two.
REVIEWER_CN, SUPERVISOR_CN, UNKNOWN_CN = "reviewer-cert-01", "supervisor-cert-01", "nobody-01"
CERT_PRINCIPALS = (
    {"id": "rev-cert", "role": "reviewer", "department": CIVIL, "jurisdiction": "4406",
     "cert_common_name": REVIEWER_CN},
    {"id": "sup-cert", "role": "supervisor", "jurisdiction": "440605",
     "cert_common_name": SUPERVISOR_CN},
)  # fmt: skip
CERT_BUTTON = "使用数字证书登录"


def _certificate(
    subject: str, key: Any, issuer: tuple[Any, x509.Name] | None, *, ca: bool = False,
    server: bool = False,
) -> x509.Certificate:  # fmt: skip
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_key, issuer_name = issuer or (key, name)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )  # fmt: skip
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Any) -> None:
    (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{stem}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client CA with the server's and three clients' certificates, and an impostor: a
    certificate with the reviewer's common name from a CA the server does not trust."""
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("miaopi console test CA", ca_key, None, ca=True)
    _write(d, "ca", ca, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    _write(d, "server", _certificate("localhost", key, (ca_key, ca.subject), server=True), key)
    for cn in (REVIEWER_CN, SUPERVISOR_CN, UNKNOWN_CN):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(d, cn, _certificate(cn, key, (ca_key, ca.subject)), key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _certificate("another CA", other_key, None, ca=True)
    _write(d, "other-ca", other, other_key)
    key = ec.generate_private_key(ec.SECP256R1())
    _write(d, "impostor", _certificate(REVIEWER_CN, key, (other_key, other.subject)), key)
    return d


@pytest.fixture(scope="module")
def server(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    running = console_server(
        tmp_path_factory.mktemp("console-certs"), CERT_PRINCIPALS,
        tls_cert=pki / "server.pem", tls_key=pki / "server.key", tls_client_ca=pki / "ca.pem",
    )  # fmt: skip
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stubs(server: LiveServer, pki: Path) -> Iterator[tuple[Any, Any]]:
    """gRPC with mutual TLS (the port requires a certificate); calls name their principal by
    token (md), which the guard prefers to the certificate."""
    creds = grpc.ssl_channel_credentials(
        (pki / "ca.pem").read_bytes(),
        private_key=(pki / f"{UNKNOWN_CN}.key").read_bytes(),
        certificate_chain=(pki / f"{UNKNOWN_CN}.pem").read_bytes(),
    )
    with grpc.secure_channel(server.target, creds) as ch:
        yield pb_grpc.ApprovalServiceStub(ch), rpb_grpc.ReviewServiceStub(ch)


def client(
    server: LiveServer, pki: Path, cert: str = "", cookies: dict[str, str] | None = None
) -> Http:
    """An HTTPS client trusting the test CA, presenting the certificate `cert` (none: "")."""
    tls = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if cert:
        tls.load_cert_chain(pki / f"{cert}.pem", pki / f"{cert}.key")
    base = console_url(server).replace("http:", "https:")
    return Http(base, dict(cookies or {}), tls=tls)


def sign_in_by_certificate(http: Http) -> Any:
    signin = http.get("/signin")
    assert signin.status == 200 and CERT_BUTTON in signin.body
    csrf = re.search(r'name="csrf" value="([^"]+)"', signin.body)
    assert csrf
    return http.post("/signin", {"csrf": csrf.group(1), "method": "certificate"})


def state_and_assignee(review: Any, decision_id: str) -> tuple[str, str]:
    task = review.GetTask(rpb.GetTaskRequest(decision_id=decision_id), metadata=md("sup")).task
    return str(task.state), str(task.assignee)


def test_a_certificate_signs_in_the_principal_grpc_maps_it_to(
    server: LiveServer, pki: Path, stubs: tuple[Any, Any]
) -> None:
    approval, review = stubs
    decision_id = review_case(approval)
    reviewer = client(server, pki, REVIEWER_CN)
    with capture_logs() as logs:
        reply = sign_in_by_certificate(reviewer)
    assert (reply.status, reply.location) == (303, "/"), reply.body
    cookie = next(c for c in reply.headers.get_all("Set-Cookie") if "miaopi_session=" in c)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    signed_in = [e for e in logs if e["event"] == "console.signed_in"]
    assert signed_in == [
        {"event": "console.signed_in", "principal": "rev-cert", "role": "reviewer",
         "method": "certificate", "log_level": "info"}
    ]  # fmt: skip
    assert REVIEWER_CN not in str(logs)  # the certificate's name is not logged
    queue = reviewer.get("/queue")
    assert queue.status == 200 and "rev-cert" in queue.body and decision_id in queue.body
    # An action is the certificate's principal's, recorded as such by the service.
    assert reviewer.post(f"/cases/{decision_id}/claim", {"csrf": reviewer.csrf()}).status == 303
    assert state_and_assignee(review, decision_id) == ("claimed", "rev-cert")

    supervisor = client(server, pki, SUPERVISOR_CN)
    reply = sign_in_by_certificate(supervisor)
    assert (reply.status, reply.location) == (303, "/")
    assert supervisor.get("/").location == "/supervision"
    assert supervisor.get("/supervision").status == 200


def test_a_cookie_replayed_without_its_certificate_is_refused(
    server: LiveServer, pki: Path, stubs: tuple[Any, Any]
) -> None:
    approval, review = stubs
    decision_id = review_case(approval)
    owner = client(server, pki, REVIEWER_CN)
    assert sign_in_by_certificate(owner).status == 303
    csrf = owner.csrf()
    stolen = {"miaopi_session": owner.cookies["miaopi_session"]}
    for thief in (
        client(server, pki, "", stolen),  # no certificate at all
        client(server, pki, SUPERVISOR_CN, stolen),  # a valid certificate, another one's
        client(server, pki, UNKNOWN_CN, stolen),  # a valid certificate of no principal
    ):
        assert thief.get("/queue").location == "/signin"
        assert thief.get(f"/cases/{decision_id}").location == "/signin"
        refused = thief.post(f"/cases/{decision_id}/claim", {"csrf": csrf})
        assert refused.status in (401, 403) and "rev-cert" not in refused.body
    assert state_and_assignee(review, decision_id) == ("open", "")
    # The owner, presenting the certificate, was not signed out by the attempts.
    assert owner.post(f"/cases/{decision_id}/claim", {"csrf": csrf}).status == 303
    assert state_and_assignee(review, decision_id) == ("claimed", "rev-cert")


def test_a_certificate_of_another_issuer_is_refused_in_the_handshake(
    server: LiveServer, pki: Path
) -> None:
    impostor = client(server, pki, "impostor")  # the reviewer's common name, the wrong CA
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        impostor.get("/signin")
    # The same over gRPC: the client CA is the one both ports trust.
    creds = grpc.ssl_channel_credentials(
        (pki / "ca.pem").read_bytes(),
        private_key=(pki / "impostor.key").read_bytes(),
        certificate_chain=(pki / "impostor.pem").read_bytes(),
    )
    with grpc.secure_channel(server.target, creds) as ch, pytest.raises(grpc.RpcError) as refused:
        rpb_grpc.ReviewServiceStub(ch).ListTasks(rpb.ListTasksRequest(), timeout=5)
    assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_without_a_known_certificate_the_certificate_button_signs_no_one_in(
    server: LiveServer, pki: Path
) -> None:
    bare = client(server, pki)
    reply = sign_in_by_certificate(bare)
    assert reply.status == 401 and "此连接未出示数字证书" in reply.body
    assert "miaopi_session" not in bare.cookies
    unknown = client(server, pki, UNKNOWN_CN)
    reply = sign_in_by_certificate(unknown)  # from the CA, but in no credentials entry
    assert reply.status == 401 and "未认证" in reply.body
    assert 'id="cert-error"' in reply.body and "miaopi_session" not in unknown.cookies


def test_token_sign_in_works_beside_it_with_or_without_a_certificate(
    server: LiveServer, pki: Path
) -> None:
    for cert in ("", SUPERVISOR_CN):
        http = client(server, pki, cert)
        reply = http.sign_in("rev-civil")  # the token decides, not the certificate
        assert (reply.status, reply.location) == (303, "/")
        assert "rev-civil" in http.get("/queue").body
        # A token session is not tied to a certificate: the cookie works on any connection.
        other = client(server, pki, "", {"miaopi_session": http.cookies["miaopi_session"]})
        assert other.get("/queue").status == 200


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str:
    """A TLS handshake in memory, then one byte the client sends (in TLS 1.3 the server
    judges the client's certificate after the client finished): the subject CN the server
    saw, or an SSLError."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    cli = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    for _ in range(10):
        for side in (cli, srv):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    cli.write(b"x")
    s_in.write(c_out.read())
    assert srv.read(1) == b"x"
    cert = srv.getpeercert() or {}
    return next((v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"), "")


def test_the_console_trusts_the_client_ca_alone(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the system's trust store beside it (here another CA is made the system's, through
    SSL_CERT_FILE): a certificate of any public CA with a known common name would sign in."""
    from miaopi_server.edge.console.server import tls_context

    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "other-ca.pem"))
    server = tls_context(pki / "server.pem", pki / "server.key", pki / "ca.pem")

    def presenting(cert: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        context.load_cert_chain(pki / f"{cert}.pem", pki / f"{cert}.key")
        return context

    assert _handshake(server, presenting(REVIEWER_CN)) == REVIEWER_CN
    with pytest.raises(ssl.SSLError):
        _handshake(server, presenting("impostor"))
    without = tls_context(pki / "server.pem", pki / "server.key")
    assert _handshake(without, presenting(REVIEWER_CN)) == ""  # not asked for


def test_in_chromium_the_certificate_button_signs_in(server: LiveServer, pki: Path) -> None:
    """Chromium presenting the reviewer's certificate (Playwright's client_certificates)
    signs in with the button alone; without a certificate the button refuses."""
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make test` (it installs it)"
    base = console_url(server).replace("http:", "https:")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            presenting = browser.new_context(
                locale="zh-CN", ignore_https_errors=True,
                client_certificates=[{
                    "origin": base, "certPath": str(pki / f"{REVIEWER_CN}.pem"),
                    "keyPath": str(pki / f"{REVIEWER_CN}.key"),
                }],
            )  # fmt: skip
            page = presenting.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(base + "/queue")
            expect(page).to_have_url(base + "/signin")
            page.get_by_role("button", name=CERT_BUTTON).click()
            expect(page).to_have_url(base + "/queue")
            expect(page.get_by_role("banner")).to_contain_text("rev-cert")

            bare = browser.new_context(locale="zh-CN", ignore_https_errors=True).new_page()
            bare.set_default_timeout(WAIT_MS)
            bare.goto(base + "/signin")
            bare.get_by_role("button", name=CERT_BUTTON).click()
            expect(bare.get_by_role("alert")).to_contain_text("此连接未出示数字证书")
        finally:
            browser.close()
