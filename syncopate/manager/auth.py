"""Secrets: tokens, their hashes, constant-time checks, and the
check of a request's controller token (the main one or a person's own, both kept hashed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from syncopate.errors import Unauthorized
from syncopate.manager.store import Store

# Where the store keeps the controller tokens' hashes (its `meta` table).
CONTROLLER_TOKEN_KEY = "controller-token-hash"
CONTROLLER_USER_KEY = "controller-token-user"  # the name behind the main controller token
USER_TOKEN_PREFIX = "controller-token:"  # + a person's name: the hash of their own token
DEFAULT_CONTROLLER_USER = "admin"


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


def check_controller_token(store: Store, token: str | None) -> str:
    """The name behind a controller token (the main one, or a person's); else Unauthorized."""
    if token:
        stored = store.get_meta(CONTROLLER_TOKEN_KEY) or ""
        if stored and secret_matches(token, stored):
            return store.get_meta(CONTROLLER_USER_KEY) or DEFAULT_CONTROLLER_USER
        for key, user_hash in store.meta_with_prefix(USER_TOKEN_PREFIX):
            if secret_matches(token, user_hash):
                return key[len(USER_TOKEN_PREFIX) :]
    raise Unauthorized("controller token refused; use the token from `syncopate manager token`")


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer ...` header, if the request has one."""
    header = headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None
