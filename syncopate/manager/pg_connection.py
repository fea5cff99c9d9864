"""The connection the PostgreSQL store talks through (pg_store.py): psycopg 3 in sqlite3's terms.

- one connection in autocommit mode, transactions begun and ended by statement as with
  SQLite; the statements are sqlite3's, their `?` made psycopg's `%s` (`PgConnection`);
- connected again when the link broke, except under a leader: its leadership was the lost
  session's lock, so it writes nothing more (fencing: `leading`, `lost_lead`);
- keepalives both ways, so a dead server or a dead manager is found within seconds;
- a batch's statements kept (`KeptStatements`) and sent together in pipeline mode
  (`send_together`): one round trip;
- `waited`: the seconds the event loop spent in calls to the server (sending, waiting,
  reading); the sender thread's are not counted.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from syncopate.errors import StoreFailed

if TYPE_CHECKING:
    import psycopg

SCHEMES = ("postgresql", "postgres")
# The server finds a dead manager's session (and frees its leader lock) within ~11 s ...
KEEPALIVES = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 2, "tcp_keepalives_count": 3}
# ... and this side finds a dead server (or a partition) as soon: a call waits no longer than
# ~15 s for an answer (tcp_user_timeout), so a partitioned leader stops, as it must.
CLIENT_KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15000,
}


def is_postgresql(store: str | None) -> bool:
    """Whether a `--store` value names a PostgreSQL database."""
    return store is not None and urlsplit(store).scheme in SCHEMES


def shown(url: str) -> str:
    """The URL without its password (in the user part, or a `password=` parameter), for
    logs and errors."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit(parts._replace(query=query))


_MARK = re.compile(r"\?|%")


def _placeholders(sql: str) -> str:
    """sqlite3's `?` as psycopg's `%s` (and a `%` as `%%`); no statement of ours has either
    inside a string literal."""
    return _MARK.sub(lambda m: "%s" if m.group() == "?" else "%%", sql)


class PgConnection:
    """A psycopg connection in sqlite3's terms (storage.Connection), connected again when the
    link broke (the server restarted, the network failed) before the next statement outside a
    transaction; one that cannot reach the server raises StoreFailed (503, nothing changed).

    Two threads use it: the event loop's, and the store's batch sender (pg_store.py). `lock`
    keeps them apart: a statement, a whole transaction (the store holds it from BEGIN to its
    end) or a whole batch is one thread's at a time. While `keeping` is set (a batched write
    is being made, on the loop) statements are kept there instead of run."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self._psycopg = psycopg
        self._sql: dict[str, str] = {}
        self.leading = False  # this session holds the leader lock (leadership.py)
        self.lost_lead = False
        self.waited = 0.0  # seconds in calls to the server (the loop's; see pg_store.py)
        self.lock = threading.RLock()
        self.keeping: KeptStatements | None = None
        self.connection = self._open()

    def _open(self) -> psycopg.Connection[Any]:
        try:
            connection = self._psycopg.connect(
                self.url, autocommit=True, connect_timeout=10, **CLIENT_KEEPALIVES
            )
            # Reports: the server has them when the answer goes out (durable ones say more).
            connection.execute("SET synchronous_commit TO off")
            # A manager's machine that dies sends no FIN: the server finds its session (and
            # frees its leader lock) within ~11 s, not the system's default two hours.
            for setting, value in KEEPALIVES.items():
                connection.execute(f"SET {setting} = {value}")
        except self._psycopg.Error as exc:
            raise StoreFailed(f"cannot reach the database {shown(self.url)}: {exc}") from None
        return connection

    def in_transaction(self) -> bool:
        """Whether a transaction is open (a broken link has none left to roll back)."""
        from psycopg.pq import TransactionStatus

        if self.connection.broken or self.connection.closed:
            return False
        return self.connection.info.transaction_status != TransactionStatus.IDLE

    def _ready(self) -> psycopg.Connection[Any]:
        if (self.connection.broken or self.connection.closed) and not self.in_transaction():
            if self.leading:
                # The leadership was this session's lock: a new session does not hold it, and
                # another manager may lead by now. Nothing more is written (fencing).
                self.lost_lead = True
                raise StoreFailed("lost the database session that held the leadership")
            self.connection.close()
            self.connection = self._open()
        return self.connection

    def _query(self, sql: str) -> str:
        query = self._sql.get(sql)
        if query is None:
            query = self._sql[sql] = _placeholders(sql)
        return query

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        if self.keeping is not None:
            return self.keeping.execute(sql, parameters)
        with self._call() as connection:
            # psycopg prepares a statement on the server once it has run 5 times (a report's).
            return connection.execute(self._query(sql), parameters or None)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        if self.keeping is not None:
            return self.keeping.executemany(sql, parameters)
        with self._call() as connection:
            cursor = connection.cursor()
            cursor.executemany(self._query(sql), parameters)
            return cursor

    def send_together(self, statements: Sequence[KeptStatement], timed: bool = True) -> None:
        """BEGIN, the statements and COMMIT in pipeline mode: one round trip to the server.
        Whatever goes wrong, no transaction is left open (rolled back here) and it raises as
        `execute` does. `timed`: counted in `waited` (the sender thread's time is not)."""
        with self._call(timed) as connection:
            try:
                with connection.pipeline():
                    connection.execute("BEGIN")
                    for sql, parameters, many in statements:
                        if many:
                            connection.cursor().executemany(self._query(sql), parameters)
                        else:
                            connection.execute(self._query(sql), parameters or None)
                    connection.execute("COMMIT")
            except BaseException:
                if self.in_transaction():
                    with contextlib.suppress(self._psycopg.Error):
                        connection.execute("ROLLBACK")
                raise

    @contextmanager
    def _call(self, timed: bool = True) -> Iterator[psycopg.Connection[Any]]:
        """One call to the server, this thread's alone: timed, and what went wrong said in the
        store's terms."""
        started = time.perf_counter()
        with self.lock:
            connection = self.connection
            try:
                connection = self._ready()
                yield connection
            except self._psycopg.Error as exc:
                # In a transaction the store rolls back and says why; a lost link or a refused
                # read is said here.
                if connection.broken and self.leading:
                    self.lost_lead = True  # see _ready
                if connection.broken or not self.in_transaction():
                    raise StoreFailed(f"database {shown(self.url)}: {exc}") from exc
                raise
            finally:
                if timed:
                    self.waited += time.perf_counter() - started

    def close(self) -> None:
        with self.lock:
            self.connection.close()


# (statement, parameters, whether `parameters` is a sequence of them: executemany)
KeptStatement = tuple[str, Any, bool]


class KeptStatements:
    """A batch's statements, in the order its writes made them, kept to be sent together at
    its commit (`PgConnection.send_together`). Only writes that return nothing: nothing of the
    batch is on the server yet, so there is nothing to read."""

    def __init__(self) -> None:
        self.statements: list[KeptStatement] = []

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        self._check(sql)
        self.statements.append((sql, parameters, False))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        self._check(sql)
        self.statements.append((sql, list(parameters), True))

    @staticmethod
    def _check(sql: str) -> None:
        words = sql.split(None, 1)
        verb = words[0].upper() if words else ""
        if verb not in ("INSERT", "UPDATE", "DELETE") or "RETURNING" in sql.upper():
            raise RuntimeError(f"a batched write may only write, not read: {sql}")
