"""Pins of a manager's certificate, and the join string that carries one (DESIGN §15).

    pin = key_pin(der)                      # "sha256:<64 hex>" of the certificate's public key
    pin_matches(parse_pin(pin), der)        # True
    token = join_token(pin, "s3cret-pw")    # "SYN1-<64 hex>-s3cret-pw"
    parse_join_token(token)                 # JoinToken(pin="sha256:...", secret="s3cret-pw")

THE pin is the SHA-256 of the certificate's SubjectPublicKeyInfo (its public key, DER): the
manager renews its certificate with the same key, so a pin outlives renewals. A pin of the
whole certificate (the seed's `--fingerprint`) is accepted too. Stdlib only: the agent imports
this, and `cryptography` would cost it megabytes of memory to read one field of a certificate.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

PIN_PREFIX = "sha256:"
JOIN_PREFIX = "SYN1-"
JOIN_SHAPE = "SYN1-<64 hex digits>-<join secret>"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _der_item(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER item at `offset`."""
    tag = data[offset]
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[start : start + size], "big")
        start += size
    end = start + length
    if end > len(data):
        raise ValueError("DER item runs past the end")
    return tag, start, end


def public_key_der(cert_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo (DER, with its header) of an X.509 certificate in DER."""
    try:
        _, cert_start, _ = _der_item(cert_der, 0)  # Certificate ::= SEQUENCE
        _, offset, _ = _der_item(cert_der, cert_start)  # tbsCertificate ::= SEQUENCE
        # version [0] (optional), serial, signature algorithm, issuer, validity, subject, SPKI
        fields = 6
        tag, _, end = _der_item(cert_der, offset)
        if tag == 0xA0:
            offset = end
        for _ in range(fields - 1):
            _, _, offset = _der_item(cert_der, offset)
        tag, _, end = _der_item(cert_der, offset)
    except IndexError:
        raise ValueError("not a DER certificate") from None
    if tag != 0x30:
        raise ValueError("not a DER certificate")
    return cert_der[offset:end]


def key_pin(cert_der: bytes) -> str:
    """`sha256:<hex>` of the certificate's public key: the pin of a manager."""
    return PIN_PREFIX + hashlib.sha256(public_key_der(cert_der)).hexdigest()


def certificate_pin(cert_der: bytes) -> str:
    """`sha256:<hex>` of the whole certificate (the seed's `--fingerprint`)."""
    return PIN_PREFIX + hashlib.sha256(cert_der).hexdigest()


def pin_matches(pin: bytes, cert_der: bytes) -> bool:
    """Whether the 32-byte `pin` is the hash of the certificate's key or of the certificate."""
    try:
        key = hashlib.sha256(public_key_der(cert_der)).digest()
    except ValueError:
        key = b""
    whole = hashlib.sha256(cert_der).digest()
    # Both compared, always: the time taken says nothing of which one matched.
    return hmac.compare_digest(key, pin) | hmac.compare_digest(whole, pin)


def parse_pin(pin: str) -> bytes:
    """The 32 bytes of a `sha256:<hex>` pin (colons and upper case allowed); ValueError."""
    digest = pin.strip().removeprefix(PIN_PREFIX).replace(":", "")
    try:
        raw = bytes.fromhex(digest)
    except ValueError:
        raise ValueError(f"fingerprint {pin!r} is not sha256:<64 hex digits>") from None
    if len(raw) != 32:
        raise ValueError(f"fingerprint {pin!r} is not a SHA-256 digest")
    return raw


@dataclass(frozen=True)
class JoinToken:
    pin: str  # "sha256:<64 hex>"
    secret: str  # the join password


def join_token(pin: str, secret: str) -> str:
    """The join string of a manager with this pin and join password."""
    return f"{JOIN_PREFIX}{parse_pin(pin).hex()}-{secret}"


def parse_join_token(token: str) -> JoinToken:
    """The pin and the secret in a join string; ValueError names the expected shape."""
    prefix, _, rest = token.strip().partition("-")
    digest, _, secret = rest.partition("-")  # the secret may hold "-": split on the first two
    if prefix + "-" != JOIN_PREFIX or not _HEX64.fullmatch(digest.lower()) or not secret:
        raise ValueError(f"a join token looks like {JOIN_SHAPE}")
    return JoinToken(PIN_PREFIX + digest.lower(), secret)
