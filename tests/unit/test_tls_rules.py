"""TLS beyond loopback (DESIGN §15): when HTTPS is the default, the manager's own certificate and
its renewal, the pin (the key's hash), and the join string that carries it."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from syncopate.cli.main import app
from syncopate.manager import tls
from syncopate.manager.tls import OwnCertificate, needs_tls, served_names
from syncopate.node import identity
from syncopate.pins import (
    certificate_pin,
    join_token,
    key_pin,
    parse_join_token,
    parse_pin,
    pin_matches,
    public_key_der,
)

PIN = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("host", "https"),
    [
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("127.255.1.9", False),
        ("::1", False),
        ("localhost", False),
        ("LOCALHOST", False),
        ("0.0.0.0", True),
        ("::", True),
        ("", True),
        ("192.168.1.10", True),
        ("10.0.0.5", True),
        ("fe80::1", True),
        ("pi-0.lan", True),
        ("manager", True),
    ],
)
def test_needs_tls_beyond_loopback_only(host: str, https: bool) -> None:
    assert needs_tls(host) is https


def test_join_string_round_trip() -> None:
    token = join_token(PIN, "sjnty-85fbq-bbfjt")  # the secret holds "-": split on the first two
    assert token == "SYN1-" + "ab" * 32 + "-sjnty-85fbq-bbfjt"
    parsed = parse_join_token(token)
    assert (parsed.pin, parsed.secret) == (PIN, "sjnty-85fbq-bbfjt")
    # Any spelling of the pin gives the same join string.
    assert join_token("sha256:" + ":".join(["AB"] * 32), "pw") == join_token(PIN, "pw")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "SYN1-",
        "SYN1-" + "ab" * 32,
        "SYN1-" + "ab" * 32 + "-",
        "SYN2-" + "ab" * 32 + "-pw",
        "SYN1-" + "ab" * 31 + "-pw",
        "SYN1-" + "zz" * 32 + "-pw",
        "K10" + "ab" * 32 + "::pw",
    ],
)
def test_malformed_join_strings_name_the_shape(token: str) -> None:
    with pytest.raises(ValueError, match="SYN1-<64 hex digits>-<join secret>"):
        parse_join_token(token)


def test_pin_is_the_public_keys_hash_and_both_pins_match() -> None:
    for key_type in (trustme.KeyType.ECDSA, trustme.KeyType.RSA):
        ca = trustme.CA(key_type=key_type)
        leaf = ca.issue_cert("127.0.0.1", key_type=key_type)
        pem = leaf.cert_chain_pems[0].bytes()
        der = ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))
        spki = (
            x509.load_pem_x509_certificate(pem)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        assert public_key_der(der) == spki
        assert key_pin(der) == "sha256:" + hashlib.sha256(spki).hexdigest()
        assert pin_matches(parse_pin(key_pin(der)), der)
        assert pin_matches(parse_pin(certificate_pin(der)), der)
        assert not pin_matches(parse_pin(PIN), der)
    with pytest.raises(ValueError):
        public_key_der(b"\x30\x03\x02\x01\x01")


def names_of(cert_path: Path) -> tuple[set[str], set[str]]:
    return tls.covered(x509.load_pem_x509_certificate(cert_path.read_bytes()))


def test_own_certificate_covers_localhost_the_host_name_and_served_addresses(
    tmp_path: Path,
) -> None:
    own = OwnCertificate(tmp_path / "tls", "0.0.0.0")
    own.context()
    assert own.key_path.stat().st_mode & 0o777 == 0o600
    names, addresses = names_of(own.cert_path)
    assert {"localhost", *served_names("0.0.0.0")[0]} <= names
    # Listening on every address: every interface's address, loopback included.
    assert set(tls.interface_addresses()) <= addresses
    assert {"127.0.0.1", "::1"} <= addresses
    certificate = x509.load_pem_x509_certificate(own.cert_path.read_bytes())
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert datetime.timedelta(days=364) < lifetime < datetime.timedelta(days=366)
    specific = OwnCertificate(tmp_path / "tls-specific", "192.0.2.7")
    specific.context()
    assert "192.0.2.7" in names_of(specific.cert_path)[1]


def test_renewal_keeps_the_key_and_changes_the_certificate(tmp_path: Path) -> None:
    own = OwnCertificate(tmp_path / "tls", "127.0.0.1")
    context = own.context()
    key, cert, pin = own.key_path.read_bytes(), own.cert_path.read_bytes(), own.pin()
    now = datetime.datetime.now(datetime.UTC)
    assert not own.renew_if_due(now)  # fresh: nothing to do
    assert not own.renew_if_due(now + datetime.timedelta(days=300))
    assert own.renew_if_due(now + datetime.timedelta(days=340))  # under 30 days left
    assert own.key_path.read_bytes() == key
    assert own.cert_path.read_bytes() != cert
    assert own.pin() == pin  # nodes' pins survive the renewal
    assert own.context() is context  # reloaded into the running context, not a new one
    # The addresses served changed (a new --host): a new certificate, the same key.
    moved = OwnCertificate(tmp_path / "tls", "192.0.2.9")
    assert moved.renew_if_due()
    assert "192.0.2.9" in names_of(moved.cert_path)[1]
    assert moved.pin() == pin


def test_the_agent_keeps_its_pin_and_a_later_one_wins(tmp_path: Path) -> None:
    manager = "https://192.0.2.1:8470"
    assert identity.pin_for(tmp_path, manager, None) is None
    identity.save(tmp_path, identity.Identity("pi-1", "tok", manager, PIN))
    assert identity.load(tmp_path) == identity.Identity("pi-1", "tok", manager, PIN)
    assert identity.pin_for(tmp_path, manager, None) == PIN
    other = "sha256:" + "cd" * 32
    assert identity.pin_for(tmp_path, manager, other) == other
    assert identity.pin_for(tmp_path, "https://192.0.2.2:8470", None) is None
    identity.save(tmp_path, identity.Identity("pi-1", "tok", manager))
    assert "fingerprint" not in (tmp_path / "node.json").read_text()


def test_node_join_with_a_malformed_token_is_a_usage_error(tmp_path: Path) -> None:
    done = CliRunner().invoke(
        app, ["node", "join", "https://192.0.2.1:8470", "--token", "SYN1-abc-pw"]
    )
    assert done.exit_code == 2
    assert "SYN1-<64 hex digits>-<join secret>" in done.output


@pytest.mark.parametrize("command", ["join", "install-service"])
def test_node_join_over_plain_http_beyond_loopback_needs_insecure(
    command: str, tmp_path: Path
) -> None:
    """The join password and the node's token would cross the network in clear."""
    base = ["node", command, "--password", "pw", "--data-dir", str(tmp_path / "node")]
    base += ["--user", "--print"] if command == "install-service" else []
    refused = CliRunner().invoke(app, [*base[:2], "http://192.0.2.1:8470", *base[2:]])
    assert refused.exit_code == 2
    assert "refusing to send the join password and the node's token in clear" in refused.output
    assert "add --insecure" in refused.output
    if command == "install-service":  # join would start an agent: only its refusal here
        for url, extra in (("http://192.0.2.1:8470", ["--insecure"]), ("http://127.0.0.1:1", [])):
            done = CliRunner().invoke(app, [*base[:2], url, *base[2:], *extra])
            assert done.exit_code == 0, done.output


def test_node_install_service_puts_the_pin_in_the_unit_and_the_secret_beside_it(
    tmp_path: Path,
) -> None:
    secret = "sjnty-85fbq-bbfjt-r36gh"
    args = ["node", "install-service", "https://192.0.2.1:8470", "--user"]
    args += ["--token", join_token(PIN, secret), "--data-dir", str(tmp_path / "node")]
    args += ["--unit-dir", str(tmp_path / "units")]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    unit = (tmp_path / "units" / "syncopate-node.service").read_text()
    assert f"--fingerprint {PIN}" in unit
    assert secret not in unit
    env_files = [p for p in tmp_path.rglob("*") if p.is_file() and secret in p.read_text()]
    assert len(env_files) == 1 and env_files[0].stat().st_mode & 0o777 == 0o600
    assert f"SYNCOPATE_PASSWORD={secret}" in env_files[0].read_text()
    missing = CliRunner().invoke(app, ["node", "install-service", "https://m:8470", "--print"])
    assert missing.exit_code == 2 and "--token" in missing.output


def test_manager_install_service_carries_tls_and_insecure(tmp_path: Path) -> None:
    base = ["manager", "install-service", "--user", "--print", "--data-dir", str(tmp_path)]
    for flag in ("--tls", "--insecure"):
        done = CliRunner().invoke(app, [*base, "--host", "0.0.0.0", flag])
        assert done.exit_code == 0, done.output
        assert f" {flag}" in done.output.split("ExecStart=", 1)[1].splitlines()[0]
    both = CliRunner().invoke(app, [*base, "--tls", "--insecure"])
    assert both.exit_code == 1 and "--insecure" in str(both.exception)


def test_join_command_from_the_data_dir(tmp_path: Path) -> None:
    from syncopate.errors import ConfigError
    from syncopate.manager.auth import hash_secret
    from syncopate.manager.join import JOIN_PASSWORD_KEY, kept_join_command, rotate_join
    from syncopate.manager.store import Store
    from syncopate.paths import write_private_json

    store = Store(tmp_path)
    try:
        with pytest.raises(ConfigError, match="start the manager first"):
            kept_join_command(tmp_path, store)
        url = "https://192.0.2.1:8470"
        write_private_json(tmp_path / "controller.json", {"join-url": url, "fingerprint": PIN})
        (tmp_path / "password").write_text("kept-pw\n")
        store.set_meta(JOIN_PASSWORD_KEY, hash_secret("kept-pw"))
        line = kept_join_command(tmp_path, store)
        assert line == f"syncopate node join {url} --token {join_token(PIN, 'kept-pw')}"
        assert kept_join_command(tmp_path, store, "https://pi-0:8470").startswith(
            "syncopate node join https://pi-0:8470 --token SYN1-"
        )
        # Plain HTTP: no pin to carry, the seed's --password.
        plain = kept_join_command(tmp_path, store, "http://127.0.0.1:8470")
        assert plain == "syncopate node join http://127.0.0.1:8470 --password kept-pw"
        # The manager runs with a password given by --password: not kept, said so.
        store.set_meta(JOIN_PASSWORD_KEY, hash_secret("given-on-the-command-line"))
        with pytest.raises(ConfigError, match="not kept"):
            kept_join_command(tmp_path, store)
        # rotate-join: a new kept password, its hash in force.
        new = rotate_join(tmp_path, store)
        assert new != "kept-pw" and store.get_meta(JOIN_PASSWORD_KEY) == hash_secret(new)
        assert kept_join_command(tmp_path, store).endswith(f"-{new}")
    finally:
        store.close()


def test_a_join_string_needs_an_https_url() -> None:
    token = join_token(PIN, "pw")
    done = CliRunner().invoke(app, ["node", "join", "http://192.0.2.1:8470", "--token", token])
    assert done.exit_code == 2 and "https://" in done.output


async def test_a_running_server_renews_into_its_own_context(tmp_path: Path) -> None:
    from syncopate.manager.server import renew_while_running
    from tests.helpers import wait_for

    own = OwnCertificate(tmp_path / "tls", "127.0.0.1")
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=own.context())
    port = server.sockets[0].getsockname()[1]

    async def presented() -> bytes:
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.transport.abort()
        return bytes(der)

    first = await presented()
    own.host = "192.0.2.5"  # as if the addresses served changed under it
    renewing = asyncio.create_task(renew_while_running(own, interval=0.01))
    try:
        await wait_for(
            lambda: _covers(own, "192.0.2.5"), timeout=10, what="the certificate to be renewed"
        )
        second = await presented()
    finally:
        renewing.cancel()
        server.close()
        await server.wait_closed()
    assert second != first and key_pin(second) == key_pin(first)
    assert second == ssl.PEM_cert_to_DER_cert(own.cert_path.read_text())


async def _covers(own: OwnCertificate, address: str) -> bool:
    return address in names_of(own.cert_path)[1]
