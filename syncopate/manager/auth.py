"""Secrets: tokens, their hashes, constant-time checks, the wrong-password throttle, and the
check of a request's controller token (the main one or a person's own, both kept hashed), which
says who is behind it and with which role (`Caller`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from syncopate.errors import Forbidden, Unauthorized
from syncopate.manager.store import Store
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


def check_controller_token(store: Store, token: str | None) -> Caller:
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


@dataclass
class JoinThrottle:
    """Refuses joins from an address after repeated wrong passwords, for a while.

    `max_failures` wrong passwords within `window` seconds lock the address out for
    `lockout` seconds. Pure: the caller passes the time in.
    """

    max_failures: int = 5
    window: float = 60.0
    lockout: float = 60.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)

    def retry_after(self, address: str, now: float) -> float:
        """Seconds until this address may try again; 0 when it may try now."""
        until = self._locked_until.get(address)
        if until is None:
            return 0.0
        if now >= until:
            del self._locked_until[address]
            return 0.0
        return until - now

    def failed(self, address: str, now: float) -> None:
        """Record a wrong password from `address`."""
        history = self._failures.setdefault(address, deque())
        history.append(now)
        while history and now - history[0] > self.window:
            history.popleft()
        if len(history) >= self.max_failures:
            self._locked_until[address] = now + self.lockout
            history.clear()
        if len(self._failures) > 10_000:
            self._forget_old(now)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _forget_old(self, now: float) -> None:
        for address in [a for a, h in self._failures.items() if not h or now - h[-1] > self.window]:
            del self._failures[address]
