"""The manager over HTTPS (--tls-cert/--tls-key): verified by a CA file or a pinned fingerprint.

The certificates come from trustme: a throwaway CA and a server certificate for 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import trustme

from syncopate.client import ManagerClient
from syncopate.errors import ConnectionFailed, PinMismatch, Unauthorized
from syncopate.pins import key_pin
from tests.helpers import PASSWORD, wait_for
from tests.procs import ManagerProcess, manager_process

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class TlsManager:
    process: ManagerProcess
    url: str
    token: str
    ca_file: str
    fingerprint: str  # sha256:<hex> of the leaf certificate's DER
    other_ca_file: str  # a CA that did not sign the manager's certificate


def write_certificates(directory: Path) -> tuple[Path, Path, Path, Path, str]:
    """(CA file, certificate chain, key, unrelated CA file, leaf fingerprint) as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    other_ca_file = directory / "other-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    for i, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(cert_file), append=i > 0)
    leaf.private_key_pem.write_to_path(str(key_file))
    trustme.CA().cert_pem.write_to_path(str(other_ca_file))
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode("ascii"))
    return ca_file, cert_file, key_file, other_ca_file, "sha256:" + hashlib.sha256(der).hexdigest()


@pytest.fixture(scope="module")
def tls_manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsManager]:
    """One HTTPS manager for the module (a subprocess, stopped at the end)."""
    base = tmp_path_factory.mktemp("tls")
    ca_file, cert_file, key_file, other_ca_file, fingerprint = write_certificates(base / "certs")
    with manager_process(
        base / "manager",
        password=PASSWORD,
        extra_args=["--tls-cert", str(cert_file), "--tls-key", str(key_file)],
    ) as process:
        url = process.start()
        yield TlsManager(process, url, process.token, str(ca_file), fingerprint, str(other_ca_file))


async def no_connection_left(url: str) -> None:
    """Wait until this process holds no socket to the manager at `url`.

    A refused TLS connection is closed with a TLS shutdown that takes a round trip; the test's
    event loop must not end before it, or the socket is reported as leaked (ResourceWarning).
    """
    port = int(url.rsplit(":", 1)[1])

    async def closed() -> bool:
        return not [
            c for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr.port == port
        ]

    await wait_for(closed, timeout=5, what=f"the connections to port {port} to close")


def test_listens_on_https(tls_manager: TlsManager) -> None:
    assert tls_manager.url.startswith("https://127.0.0.1:")


async def test_ca_file(tls_manager: TlsManager) -> None:
    async with ManagerClient(tls_manager.url, tls_manager.token, ca_file=tls_manager.ca_file) as c:
        assert await c.status() == {}
        assert (await c.health())["status"] == "ok"


async def test_pinned_fingerprint_without_ca(tls_manager: TlsManager) -> None:
    async with ManagerClient(
        tls_manager.url, tls_manager.token, fingerprint=tls_manager.fingerprint
    ) as client:
        assert await client.status() == {}
    # The fingerprint in the usual colon-separated upper-case spelling works too.
    digest = tls_manager.fingerprint.removeprefix("sha256:").upper()
    spelled = "sha256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    async with ManagerClient(tls_manager.url, tls_manager.token, fingerprint=spelled) as client:
        assert await client.status() == {}


async def test_wrong_fingerprint_is_refused(tls_manager: TlsManager) -> None:
    wrong = "sha256:" + hashlib.sha256(b"not the certificate").hexdigest()
    async with ManagerClient(tls_manager.url, tls_manager.token, fingerprint=wrong) as client:
        with pytest.raises(ConnectionFailed) as caught:
            await client.status()
    assert "fingerprint" in str(caught.value)
    assert tls_manager.url in str(caught.value)
    await no_connection_left(tls_manager.url)


async def test_system_store_does_not_trust_the_certificate(tls_manager: TlsManager) -> None:
    async with ManagerClient(tls_manager.url, tls_manager.token) as client:
        with pytest.raises(ConnectionFailed) as caught:
            await client.status()
    assert "certificate" in str(caught.value)
    await no_connection_left(tls_manager.url)


async def test_unrelated_ca_is_refused(tls_manager: TlsManager) -> None:
    async with ManagerClient(
        tls_manager.url, tls_manager.token, ca_file=tls_manager.other_ca_file
    ) as client:
        with pytest.raises(ConnectionFailed) as caught:
            await client.status()
    assert "certificate" in str(caught.value)
    await no_connection_left(tls_manager.url)


async def test_plain_http_to_the_tls_port_fails_cleanly(tls_manager: TlsManager) -> None:
    plain = tls_manager.url.replace("https://", "http://", 1)
    async with ManagerClient(plain, tls_manager.token, timeout=10) as client:
        with pytest.raises(ConnectionFailed) as caught:
            await client.status()
    assert plain in str(caught.value)
    await no_connection_left(tls_manager.url)
    # The manager shrugs it off and keeps serving HTTPS.
    async with ManagerClient(tls_manager.url, tls_manager.token, ca_file=tls_manager.ca_file) as c:
        assert await c.status() == {}
    assert tls_manager.process.running
    assert "Traceback" not in tls_manager.process.output


def key_pin_of(cert_file: Path) -> str:
    """The pin of the first certificate in a PEM file: sha256 of its public key."""
    pem = cert_file.read_text(encoding="ascii")
    end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return key_pin(ssl.PEM_cert_to_DER_cert(pem[:end]))


def test_controller_json_has_https_url_and_fingerprint(tls_manager: TlsManager) -> None:
    data = tls_manager.process.controller_json()
    assert data["url"] == tls_manager.url
    assert data["url"].startswith("https://")
    # The pin of the key (DESIGN §15: it survives renewals); the certificate's own hash, which
    # the other tests pin with, is accepted as well.
    cert_file = Path(tls_manager.ca_file).parent / "server.pem"
    assert data["fingerprint"] == key_pin_of(cert_file) != tls_manager.fingerprint
    assert data["token"] == tls_manager.token


async def test_node_joins_over_tls(tls_manager: TlsManager) -> None:
    async with ManagerClient(tls_manager.url, ca_file=tls_manager.ca_file) as node:
        name, token = await node.initialize(PASSWORD, "tls-node", storage=10_000, ram=4_000)
        assert name == "tls-node"
        answer = await node.node_status(name, token)
        assert answer["name"] == "tls-node"
        with pytest.raises(Unauthorized):
            await node.initialize("wrong-password", "tls-intruder")
    # A node that pins the fingerprint from controller.json instead of holding the CA.
    pinned = tls_manager.process.controller_json()["fingerprint"]
    async with ManagerClient(tls_manager.url, fingerprint=pinned) as node:
        name, token = await node.initialize(PASSWORD, "pinned-node", storage=10_000, ram=4_000)
        assert (await node.node_status(name, token))["name"] == name
    async with ManagerClient(tls_manager.url, tls_manager.token, ca_file=tls_manager.ca_file) as c:
        nodes = await c.nodes()
    assert {"tls-node", "pinned-node"} <= set(nodes)
    assert nodes["tls-node"]["status"] == "alive"


def write_self_signed(directory: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for 127.0.0.1 (no CA at all): (cert, key, fingerprint)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syncopate-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "self.pem", directory / "self.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return cert_file, key_file, "sha256:" + hashlib.sha256(der).hexdigest()


async def test_self_signed_certificate_by_pin_or_as_its_own_ca(tmp_path: Path) -> None:
    cert_file, key_file, fingerprint = write_self_signed(tmp_path / "certs")
    with manager_process(
        tmp_path / "manager",
        password=PASSWORD,
        extra_args=["--tls-cert", str(cert_file), "--tls-key", str(key_file)],
    ) as process:
        url = process.start()
        pin = process.controller_json()["fingerprint"]
        assert pin == key_pin_of(cert_file)
        for options in (
            {"fingerprint": fingerprint},
            {"fingerprint": pin},
            {"ca_file": str(cert_file)},
        ):
            async with ManagerClient(url, process.token, **options) as client:
                assert await client.status() == {}
        async with ManagerClient(url, process.token) as client:
            with pytest.raises(ConnectionFailed, match="certificate"):
                await client.status()
        await no_connection_left(url)


def test_the_cli_over_https(tls_manager: TlsManager, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    env |= {
        "SYNCOPATE_HOME": str(tmp_path),
        "SYNCOPATE_MANAGER": tls_manager.url,
        "SYNCOPATE_TOKEN": tls_manager.token,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "syncopate", "node", "list", "--json", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    pinned = ["--fingerprint", tls_manager.fingerprint]
    for verified in (pinned, ["--ca-file", tls_manager.ca_file]):
        done = cli(*verified)
        assert done.returncode == 0, done.stderr
        assert isinstance(json.loads(done.stdout), list)
    done = cli()  # the system store does not know the throwaway CA
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot verify the certificate of {tls_manager.url}")
    assert "pass --ca-file or --fingerprint" in done.stderr and "Traceback" not in done.stderr
    env["SYNCOPATE_FINGERPRINT"] = tls_manager.fingerprint  # the environment works too
    assert cli().returncode == 0


async def test_events_feed_takes_the_key_pin_and_names_both_on_a_wrong_one(
    tls_manager: TlsManager,
) -> None:
    # /events goes through aiohttp (the TUI's tables, `logs --follow`): the pin of the key,
    # which controller.json holds, must open it as it opens the plain requests.
    pin = tls_manager.process.controller_json()["fingerprint"]
    async with ManagerClient(tls_manager.url, tls_manager.token, fingerprint=pin) as client:
        feed = client.events()
        first = await anext(feed)
        await feed.aclose()
    assert first["type"] == "snapshot"
    wrong = "sha256:" + "0f" * 32
    async with ManagerClient(tls_manager.url, tls_manager.token, fingerprint=wrong) as client:
        with pytest.raises(PinMismatch) as caught:
            await anext(client.events())
    assert wrong in str(caught.value) and pin in str(caught.value)
    await no_connection_left(tls_manager.url)
