"""Secrets: tokens, their hashes, constant-time checks, the wrong-password throttle, and the
check of a request's controller token (the main one or a person's own, both kept hashed), which
says who is behind it and with which role (`Caller`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from syncopate.errors import Forbidden, Unauthorized
from syncopate.manager.sql_store import SqlStore
from syncopate.manager.token_book import MAIN_HASH_KEY, MAIN_USER_KEY
from syncopate.roles import Role

# Where the store keeps the main controller token's hash and name (its `meta` table).
CONTROLLER_TOKEN_KEY = MAIN_HASH_KEY
CONTROLLER_USER_KEY = MAIN_USER_KEY  # the name behind the main controller token


@dataclass(frozen=True)
class Caller:
    """Who a controller token belongs to, and what it may do."""

    name: str
    role: Role
    token_hash: str  # to find the open /events streams of a token that is revoked
    main: bool = False  # the main controller token (controller.json)

    def require(self, needed: Role, what: str) -> None:
        """Forbidden (403) unless this token's role allows `what`, naming both roles."""
        if not self.role.allows(needed):
            raise Forbidden(
                f"{what} needs the {needed.value} role; {self.name}'s token is {self.role.value}"
            )


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def new_password() -> str:
    """A join password a person can type: four groups of five characters."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    groups = ["".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4)]
    return "-".join(groups)


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret; only this is stored.

    Total over str: a secret from a header or a form may hold lone surrogates (undecodable
    bytes), which `surrogatepass` encodes rather than raise; such a secret matches nothing.
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Compare a presented secret with a stored hash in constant time."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def check_controller_token(store: SqlStore, token: str | None) -> Caller:
    """Who is behind a controller token (the main one, or a person's); else Unauthorized."""
    if token:
        digest = hash_secret(token)
        tokens = store.tokens
        main = tokens.main_hash()
        caller = None
        if main and hmac.compare_digest(digest, main):
            caller = Caller(tokens.main_user(), Role.ADMIN, digest, main=True)
        elif (found := tokens.find(digest)) is not None:
            caller = Caller(found[0], found[1], digest)
        if caller is not None:
            tokens.used(digest, caller.main)
            return caller
    raise Unauthorized("controller token refused; use the token from `syncopate manager token`")


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer ...` header, if the request has one."""
    header = headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None
