"""The controller tokens of people (DESIGN §15): name, sha256 hash, role, created, last use.

One row per person in the `controller_tokens` table of the manager's database; the plain token
is shown once, when it is made, and never kept. The main controller token stays in `meta`
(`controller-token-hash`, written by server.rotate_controller_token) and is always an admin's;
its created and last-use times are kept in `meta` beside it.

Last use is written at most once a minute per token (`USE_WRITE_INTERVAL`): a read must not
cost a database write each time, and a minute is as precise as "when was it last used" needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass

from syncopate.errors import StoreFailed
from syncopate.manager.storage import Connection
from syncopate.roles import Role

TOKENS_SCHEMA = """
CREATE TABLE IF NOT EXISTS controller_tokens (
    name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
    created REAL NOT NULL, last_used REAL
);
"""
# The meta keys of the main token (its hash's key is auth.CONTROLLER_TOKEN_KEY).
MAIN_HASH_KEY = "controller-token-hash"
MAIN_USER_KEY = "controller-token-user"  # the name behind the main controller token
MAIN_CREATED_KEY = "controller-token-created"
MAIN_USED_KEY = "controller-token-last-used"
LEGACY_PREFIX = "controller-token:"  # + name: a person's token's hash before schema 7
DEFAULT_MAIN_USER = "admin"
USE_WRITE_INTERVAL = 60.0


@dataclass(frozen=True)
class TokenInfo:
    """One controller token as `manager tokens` lists it (never its value or hash)."""

    name: str
    role: Role
    created: float | None
    last_used: float | None
    main: bool = False


class TokenBook:
    """The `controller_tokens` table, and the main token's entries in `meta`.

    Made by the store on its connection; `transaction` is the store's.
    """

    def __init__(
        self,
        db: Connection,
        transaction: Callable[[bool], AbstractContextManager[None]],
        get_meta: Callable[[str], str | None],
        set_meta: Callable[[str, str, bool], None],
    ) -> None:
        self._db = db
        self._transaction = transaction
        self._get_meta = get_meta
        self._set_meta = set_meta
        self._written: dict[str, float] = {}  # token hash -> when its last use was written

    def migrate_legacy(self) -> int:
        """Schema 7: move the `controller-token:<name>` meta entries into the table, each as an
        admin's token (before roles a person's token could do everything); the count moved."""
        rows = self._db.execute(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?",
            (len(LEGACY_PREFIX), LEGACY_PREFIX),
        ).fetchall()
        now = time.time()
        with self._transaction(True):
            for key, digest in rows:
                self._db.execute(
                    "INSERT INTO controller_tokens(name, hash, role, created) "
                    "VALUES(?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (str(key)[len(LEGACY_PREFIX) :], str(digest), Role.ADMIN.value, now),
                )
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        return len(rows)

    # the main token ---------------------------------------------------------------------------
    def main_user(self) -> str:
        return self._get_meta(MAIN_USER_KEY) or DEFAULT_MAIN_USER

    def main_hash(self) -> str | None:
        return self._get_meta(MAIN_HASH_KEY)

    # people's tokens --------------------------------------------------------------------------
    def put(self, name: str, digest: str, role: Role) -> None:
        """Keep `name`'s token (its hash) with `role`, replacing any token of theirs."""
        with self._transaction(True):
            self._db.execute("DELETE FROM controller_tokens WHERE name = ?", (name,))
            self._db.execute(
                "INSERT INTO controller_tokens(name, hash, role, created) VALUES(?, ?, ?, ?)",
                (name, digest, role.value, time.time()),
            )

    def role_of(self, name: str) -> Role | None:
        row = self._db.execute(
            "SELECT role FROM controller_tokens WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else Role(row[0])

    def remove(self, name: str) -> bool:
        """Delete `name`'s token; whether there was one."""
        with self._transaction(True):
            gone = self._db.execute("DELETE FROM controller_tokens WHERE name = ?", (name,))
        return gone.rowcount > 0

    def find(self, digest: str) -> tuple[str, Role] | None:
        """(name, role) of the person's token with this hash, if any."""
        row = self._db.execute(
            "SELECT name, role FROM controller_tokens WHERE hash = ?", (digest,)
        ).fetchone()
        return None if row is None else (str(row[0]), Role(row[1]))

    def live_hashes(self) -> set[str]:
        """The hash of every token that works now, the main one included."""
        hashes = {str(h) for (h,) in self._db.execute("SELECT hash FROM controller_tokens")}
        main = self.main_hash()
        if main:
            hashes.add(main)
        return hashes

    def listing(self) -> list[TokenInfo]:
        """Every token: the main one first, then people's by name."""
        main_created = self._get_meta(MAIN_CREATED_KEY)
        main_used = self._get_meta(MAIN_USED_KEY)
        found = []
        if self.main_hash():
            found.append(
                TokenInfo(
                    self.main_user(),
                    Role.ADMIN,
                    float(main_created) if main_created else None,
                    float(main_used) if main_used else None,
                    main=True,
                )
            )
        rows = self._db.execute(
            "SELECT name, role, created, last_used FROM controller_tokens ORDER BY name"
        )
        for name, role, created, last_used in rows:
            found.append(TokenInfo(str(name), Role(role), created, last_used))
        return found

    def used(self, digest: str, main: bool, now: float | None = None) -> None:
        """Note that the token with this hash was just used: written at most once a minute.

        A write the database refuses (a full disk) is let go: a read must not fail for it.
        """
        now = time.time() if now is None else now
        if now - self._written.get(digest, -USE_WRITE_INTERVAL) < USE_WRITE_INTERVAL:
            return
        self._written[digest] = now
        with suppress(StoreFailed):
            if main:
                self._set_meta(MAIN_USED_KEY, repr(now), False)
            else:
                with self._transaction(False):
                    self._db.execute(
                        "UPDATE controller_tokens SET last_used = ? WHERE hash = ?", (now, digest)
                    )
