"""Several managers on one PostgreSQL database: which one leads, and who the others are.

Exactly one manager leads: the holder of a session-level advisory lock (`LEADER_LOCK`) on the
connection it writes with. It alone holds the fleet's state in memory and serves it: places,
runs the monitor (liveness, failover, balance, retries), holds the long polls. The others
stand by (standby.py): they forward every request to the leader and try for the lock every
`TRY_EVERY` seconds. When the leader's process dies its session ends and the lock is free; when
its machine dies the server finds the dead session by TCP keepalives (~11 s, pg_store.py). The
manager that takes the lock loads the state from the database, and, as any manager starting,
gives every node a full node-timeout before it may declare one dead (DESIGN §13).

Fencing: the lock lives in the session that writes. If that session is lost, the leader can no
longer know it leads, so it writes nothing more (PgConnection refuses) and stops; its service
manager starts it again, to stand by or lead.

Each manager says it is alive in `meta` (`manager:<url>`: its role, and when, by the database
server's clock), at most once every `HEARTBEAT_EVERY` seconds; `manager status` lists them.
The leader's URL is `meta` `leader`, written when it takes the lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from syncopate.errors import StoreFailed

if TYPE_CHECKING:
    from syncopate.manager.pg_store import PgStore

log = logging.getLogger("syncopate.manager")

LEADER_LOCK = 2  # with the schema's hash (pg_store.LOCK_KEY); 1 is the migrations'.
LEADER_KEY = "leader"
_URL = re.compile(r"https?://[!-~]+")  # printable ASCII, no spaces
MANAGER_PREFIX = "manager:"
TRY_EVERY = 1.0  # seconds between a standby's tries for the lock
HEARTBEAT_EVERY = 2.0
GONE_AFTER = 10.0  # a manager not heard of for this long is listed as gone


@dataclass(frozen=True)
class ManagerEntry:
    """One manager as `manager status` lists it."""

    url: str
    role: str  # "leader" or "standby"
    seen_ago: float  # seconds, by the database server's clock

    @property
    def alive(self) -> bool:
        return self.seen_ago < GONE_AFTER

    def info(self, leader: str | None) -> dict[str, Any]:
        """As /health lists it: a manager not heard of lately, or that says it leads when
        another does (it died leading), is gone."""
        stale_leader = self.role == "leader" and self.url != leader
        return {
            "url": self.url,
            "role": "gone" if not self.alive or stale_leader else self.role,
            "seen-ago": round(self.seen_ago, 1),
        }


class Leadership:
    """This manager's part: whether it leads, and what it tells the others."""

    def __init__(self, store: PgStore, url: str) -> None:
        self.store = store
        self.url = url
        self.leading = False

    def try_lead(self) -> bool:
        """Take the leadership if nobody holds it; True when this manager leads from now on."""
        if self.leading:
            return True
        try:
            if not self.store.try_lock(LEADER_LOCK):
                return False
        except StoreFailed as exc:
            log.warning("could not try for the leadership: %s", exc)
            return False
        # The lock is this session's: it leads, whatever comes next. A session lost from here
        # on is a lost leadership (the watchdog stops the manager).
        self.leading = True
        log.info("this manager (%s) leads", self.url)
        self.announce()
        return True

    def announce(self, durable: bool = True) -> None:
        """Tell the standbys where to forward; on disk before it serves, when it takes the
        lead (the heartbeat says it again, not durably: a refused write, or a standby that
        read an older value, heals)."""
        try:
            self.store.set_meta(LEADER_KEY, json.dumps({"url": self.url}), durable=durable)
        except StoreFailed as exc:
            log.warning("could not say this manager leads: %s", exc)

    @property
    def lost(self) -> bool:
        """It led, and the database session that held the lock is gone."""
        return self.leading and self.store.lost_lock

    def check(self) -> bool:
        """Whether the leadership still holds (one round trip on the leading session)."""
        if not self.leading:
            return False
        with contextlib.suppress(StoreFailed):
            self.store.server_time()
        return not self.store.lost_lock

    def leader_url(self) -> str | None:
        """The URL of the manager that took the lock last (it may have died since)."""
        try:
            value = self.store.get_meta(LEADER_KEY)
        except StoreFailed:
            return None
        if value is None:
            return None
        url = json.loads(value).get("url")
        # What the standby forwards to and names in its answers' Syncopate-Leader header: a
        # URL, or nothing (a row written by hand must not make headers of control characters).
        if not isinstance(url, str) or not _URL.fullmatch(url):
            return None
        return url

    def heartbeat(self) -> None:
        """Say that this manager is alive, and as what, in one commit (a refused write is let
        go): at most one write a manager every HEARTBEAT_EVERY seconds."""
        role = "leader" if self.leading else "standby"
        try:
            seen = self.store.server_time()
            value = json.dumps({"url": self.url, "role": role, "seen": seen})
            with self.store.transaction():
                if self.leading:
                    self.announce(durable=False)
                self.store.set_meta(MANAGER_PREFIX + self.url, value, durable=False)
        except StoreFailed as exc:
            log.warning("could not note this manager as alive: %s", exc)


def managers(store: PgStore) -> list[ManagerEntry]:
    """Every manager that ever said it was alive on this database, by URL."""
    now = store.server_time()
    found = []
    for _, value in store.meta_with_prefix(MANAGER_PREFIX):
        entry = json.loads(value)
        found.append(ManagerEntry(entry["url"], entry["role"], now - float(entry["seen"])))
    return found


def health_fields(leadership: Leadership) -> dict[str, Any]:
    """What /health says of the managers sharing the database: this one's role and URL, the
    leader's URL, and every manager with its role and when it was last heard of (the leader
    first, then by URL)."""
    leader = leadership.url if leadership.leading else leadership.leader_url()
    try:
        listed = [entry.info(leader) for entry in managers(leadership.store)]
        listed.sort(key=lambda entry: (entry["role"] != "leader", entry["url"]))
    except StoreFailed:
        listed = []  # the database is away: say what is known
    return {
        "store": "postgresql",
        "role": "leader" if leadership.leading else "standby",
        "url": leadership.url,
        "leader": leader,
        "managers": listed,
    }
