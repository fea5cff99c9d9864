"""The manager's own TLS certificate: when to serve HTTPS, making the certificate, renewing it.

    if needs_tls(host) or force:
        own = OwnCertificate(data_dir / "tls", host)
        context = own.context()          # made (or renewed) now if needed
        pin = own.pin()                   # "sha256:<hex of the public key>"
        ...every 12 h: own.renew_if_due() # same key, new certificate, into the same context

Beyond loopback the manager serves HTTPS (DESIGN §15). Without --tls-cert/--tls-key it makes
an ECDSA P-256 key once (`tls/key.pem`, 0600) and a self-signed certificate for it
(`tls/cert.pem`) that names `localhost`, this machine's host name and the addresses it serves.
Renewal keeps the key, so a node's pin (the key's hash, `syncopate.pins`) survives it.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from syncopate.hosts import is_loopback
from syncopate.paths import write_private
from syncopate.pins import key_pin

log = logging.getLogger("syncopate.manager.tls")

VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)  # renewed when less than this remains
RENEW_CHECK_INTERVAL = 12 * 3600.0  # seconds between checks while running
KEY_FILE = "key.pem"
CERT_FILE = "cert.pem"
ANY_ADDRESS = ("0.0.0.0", "::", "")


def needs_tls(host: str) -> bool:
    """Whether a manager listening on `host` serves HTTPS by default: all but loopback."""
    return not is_loopback(host)


def interface_addresses() -> list[str]:
    """Every address of this machine's interfaces (IPv4 and IPv6, no link-local scopes)."""
    import psutil

    found: list[str] = []
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = entry.address.split("%", 1)[0]
            if address not in found:
                found.append(address)
    return found


def served_names(host: str) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) a certificate for a manager listening on `host` covers:
    localhost and the loopback addresses, the host name, and the addresses it serves (every
    interface address when it listens on all of them)."""
    names = ["localhost"]
    addresses = ["127.0.0.1", "::1"]
    for name in (socket.gethostname(), socket.getfqdn()):
        if name and name not in names:
            names.append(name)
    if host in ANY_ADDRESS:
        served: Iterable[str] = interface_addresses()
    else:
        served = [host]
    for item in served:
        try:
            address = str(ipaddress.ip_address(item))
        except ValueError:
            if item not in names:
                names.append(item)
            continue
        if address not in addresses:
            addresses.append(address)
    return names, addresses


def join_host(host: str) -> str:
    """The host a node on another machine reaches this manager by: `host` when specific, else
    this machine's primary non-loopback address, else its host name."""
    if host not in ANY_ADDRESS:
        return host
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # connect() on UDP sends nothing: it asks the kernel which address it would use.
        probe.connect(("192.0.2.1", 9))
        address = str(probe.getsockname()[0])
        if not ipaddress.ip_address(address).is_loopback:
            return address
    except OSError:
        pass
    finally:
        probe.close()
    for address in interface_addresses():
        parsed = ipaddress.ip_address(address)
        if parsed.version == 4 and not parsed.is_loopback and not parsed.is_link_local:
            return address
    return socket.gethostname() or "127.0.0.1"


def url_host(host: str) -> str:
    """`host` as it goes into a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


class OwnCertificate:
    """The manager's self-made key and certificate in `tls_dir`, for a manager on `host`."""

    def __init__(self, tls_dir: Path, host: str) -> None:
        self.dir = tls_dir
        self.host = host
        self.key_path = tls_dir / KEY_FILE
        self.cert_path = tls_dir / CERT_FILE
        self._context: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        """The server context, with the certificate made or renewed first if due."""
        if self._context is None:
            self.renew_if_due()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.cert_path, self.key_path)
            self._context = context
        return self._context

    def pin(self) -> str:
        """The pin nodes and controllers hold: sha256 of the public key."""
        return key_pin(ssl.PEM_cert_to_DER_cert(self.cert_path.read_text(encoding="ascii")))

    def renew_if_due(self, now: datetime.datetime | None = None) -> bool:
        """Make the key if there is none, and a certificate if there is none, it ends within
        RENEW_BEFORE or it does not cover the names served; reload it into the running
        context. True when a certificate was made."""
        now = now or datetime.datetime.now(datetime.UTC)
        key = self._key()
        names, addresses = served_names(self.host)
        reason = self._renewal_reason(now, names, addresses)
        if reason is None:
            return False
        certificate = make_certificate(key, names, addresses, now)
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        write_private(self.cert_path, pem)
        log.info("TLS certificate made (%s): %s", reason, ", ".join(names + addresses))
        if self._context is not None:
            # Only connections made from now on see it; the pin (the key) is unchanged.
            self._context.load_cert_chain(self.cert_path, self.key_path)
        return True

    def _key(self) -> ec.EllipticCurvePrivateKey:
        if self.key_path.exists():
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{self.key_path} is not an ECDSA key")
            return key
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        write_private(self.key_path, pem.decode("ascii"))
        log.info("TLS key made: %s", self.key_path)
        return key

    def _renewal_reason(
        self, now: datetime.datetime, names: list[str], addresses: list[str]
    ) -> str | None:
        if not self.cert_path.exists():
            return "first start"
        try:
            current = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        except ValueError:
            return f"{self.cert_path} was unreadable"
        if current.not_valid_after_utc - now < RENEW_BEFORE:
            return f"it ended on {current.not_valid_after_utc:%Y-%m-%d}"
        covered_names, covered_addresses = covered(current)
        missing = [n for n in names if n not in covered_names]
        missing += [a for a in addresses if a not in covered_addresses]
        if missing:
            return f"it did not cover {', '.join(missing)}"
        return None


def covered(certificate: x509.Certificate) -> tuple[set[str], set[str]]:
    """The DNS names and IP addresses in a certificate's subjectAltName."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    names = set(san.get_values_for_type(x509.DNSName))
    addresses = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    return names, addresses


def make_certificate(
    key: ec.EllipticCurvePrivateKey,
    names: list[str],
    addresses: list[str],
    now: datetime.datetime,
) -> x509.Certificate:
    """A self-signed certificate for `key` naming `names` and `addresses`, valid VALIDITY."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Syncopate"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"syncopate manager {names[-1]}"[:64]),
        ]
    )
    alternatives: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alternatives += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks that lag a little
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
