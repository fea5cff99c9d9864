"""PostgreSQL, the store several managers can share (DESIGN §13): `--store postgresql://...`.

What the store does is sql_store.py's; this is how PostgreSQL does it:

- one connection (psycopg 3) in autocommit mode, transactions begun and ended by statement as
  with SQLite; the statements are sqlite3's, their `?` made psycopg's `%s` (`PgConnection`);
- ordinary commits (node reports) with `synchronous_commit` off, the session's default: the
  database server has them when the answer goes out, so they survive the loss of any manager,
  and they cost no wait for its disk; durable ones (`SET LOCAL synchronous_commit TO on`) are
  on its disk before the answer;
- a batch of node reports (group commit) is kept, not sent statement by statement, and goes to
  the server at its commit in pipeline mode: BEGIN, its statements and COMMIT in one round
  trip. The calls are synchronous on the event loop (the single writer's order is the loop's),
  so it waits one round trip per batch, not one per statement: on a LAN with a database ~0.5 ms
  away that is the difference between a loop that waits for each report's three round trips and
  one that waits once for all the reports that came together. `waited` counts the seconds
  (/metrics: syncopate_store_wait_seconds_total);
- the schema, from version 7 on (migrations.py), under an advisory lock, so managers that start
  together do not run a step twice;
- no checkpoints of ours: the server does its own.

The data dir still holds what is the manager's own: secrets.key, controller.json, the join
password's file. psycopg comes with the `postgresql` extra (`pip install 'syncopate[postgresql]'`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from syncopate.errors import StoreFailed
from syncopate.manager.migrations import Migration, migrate, statements
from syncopate.manager.sql_store import SqlStore

if TYPE_CHECKING:
    import psycopg

SCHEMES = ("postgresql", "postgres")
# Advisory locks are the database's, and a database may hold several fleets, each in a schema
# of its own (`?options=-csearch_path%3DNAME` in the URL): a lock's key is (the schema's hash,
# what it locks), so one fleet's manager never waits for another's.
SCHEMA_LOCK = 1  # while a migration runs
LOCK_KEY = "SELECT {function}(hashtext(current_schema()), ?)"

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
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
STEPS = (
    Migration(
        7,
        "every table, as SQLite's schema 7 has them",
        statements(
            _META,
            "CREATE TABLE IF NOT EXISTS nodes (name TEXT PRIMARY KEY, data TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS projects (name TEXT PRIMARY KEY, data TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS log_lines (project TEXT NOT NULL, seq BIGINT NOT NULL,"
            " line TEXT NOT NULL, time DOUBLE PRECISION, PRIMARY KEY (project, seq))",
            "CREATE TABLE IF NOT EXISTS commands (id BIGINT PRIMARY KEY, node TEXT NOT NULL, "
            'state TEXT NOT NULL, "user" TEXT NOT NULL, data TEXT NOT NULL)',
            "CREATE INDEX IF NOT EXISTS commands_by_node ON commands(node, id)",
            "CREATE INDEX IF NOT EXISTS commands_by_state ON commands(state, id)",
            "CREATE TABLE IF NOT EXISTS controller_tokens (name TEXT PRIMARY KEY, "
            "hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,"
            " last_used DOUBLE PRECISION)",
        ),
    ),
)


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
    transaction; one that cannot reach the server raises StoreFailed (503, nothing changed)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self._psycopg = psycopg
        self._sql: dict[str, str] = {}
        self.leading = False  # this session holds the leader lock (leadership.py)
        self.lost_lead = False
        self.waited = 0.0  # seconds spent waiting for the server, statements and batches
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

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        with self._said(self._ready()) as connection:
            # psycopg prepares a statement on the server once it has run 5 times (a report's).
            return connection.execute(self._query(sql), parameters or None)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> psycopg.Cursor[Any]:
        with self._said(self._ready()) as connection:
            cursor = connection.cursor()
            cursor.executemany(self._query(sql), parameters)
            return cursor

    def send_together(self, statements: Sequence[KeptStatement]) -> None:
        """BEGIN, the statements and COMMIT in pipeline mode: one round trip to the server. A
        refusal raises as `execute` does, the transaction left for the store to roll back."""
        with self._said(self._ready()) as connection, connection.pipeline():
            connection.execute("BEGIN")
            for sql, parameters, many in statements:
                if many:
                    connection.cursor().executemany(self._query(sql), parameters)
                else:
                    connection.execute(self._query(sql), parameters or None)
            connection.execute("COMMIT")

    @contextmanager
    def _said(self, connection: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
        """Time a call to the server, and say what went wrong with it in the store's terms."""
        started = time.perf_counter()
        try:
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
            self.waited += time.perf_counter() - started

    def close(self) -> None:
        self.connection.close()


# (statement, parameters, whether `parameters` is a sequence of them: executemany)
KeptStatement = tuple[str, Any, bool]


class KeptStatements:
    """A batch's statements, in the order its writes made them, kept to be sent together at
    its commit (`PgStore.flush`); the connection a batched write sees (storage.Connection)."""

    def __init__(self) -> None:
        self.statements: list[KeptStatement] = []

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        if sql.lstrip()[:6].upper() == "SELECT":
            # Nothing would be there to read: the batch's own writes are not sent yet.
            raise RuntimeError(f"a read in a batched write: {sql}")
        self.statements.append((sql, parameters, False))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        self.statements.append((sql, list(parameters), True))

    def close(self) -> None:
        """Nothing to let go of (the batch's connection is the store's)."""


class PgStore(SqlStore):
    """The manager's state in a PostgreSQL database."""

    shared = True  # other managers may use it too

    def __init__(self, url: str, data_dir: Path) -> None:
        try:
            import psycopg
        except ImportError:
            raise RuntimeError(
                "the PostgreSQL store needs psycopg: pip install 'syncopate[postgresql]'"
            ) from None
        # PgConnection says a lost link (or a refused read) as StoreFailed itself: to the
        # transactions it is a refusal of the database like any other (rolled back, told).
        self.errors = (psycopg.Error, StoreFailed)
        self.where = shown(url)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self._pg = PgConnection(url)
        except StoreFailed as exc:
            raise RuntimeError(str(exc)) from None
        self._db = self._pg
        self._kept = KeptStatements()
        try:
            self._open_common()
            with self.transaction(durable=True):
                self._lock_schema()  # CREATE IF NOT EXISTS races with itself in PostgreSQL
                self._db.execute(_META)
            migrate(self, STEPS)
            self._open_secrets(data_dir)
        except BaseException:
            self._pg.close()
            raise

    @property
    def waited(self) -> float:
        """Seconds the manager waited for the database server (statements and batches)."""
        return self._pg.waited

    # batches (group commit): kept, then sent in one round trip ----------------------------------
    @contextmanager
    def batch(self) -> Iterator[None]:
        """Join the open batch (sql_store's `batch()`), its statements kept, not sent: they go
        together at `flush()`. A join that fails takes its own statements out and the batch
        lives on (the caller puts its records back: GroupCommit.forget); nothing a batched write
        does reads the database."""
        if self._in_tx:
            yield
            return
        self._batch_open = True
        kept = self._kept
        mark = len(kept.statements)
        self._db, self._in_tx = kept, True
        try:
            yield
        except BaseException:
            del kept.statements[mark:]
            raise
        finally:
            self._db, self._in_tx = self._pg, False

    def flush(self) -> None:
        """Send the open batch, if any, and commit it; `batch_ended` hears how it went."""
        if not self._batch_open:
            return
        self._batch_open = False
        statements, self._kept.statements = self._kept.statements, []
        if statements:
            try:
                self._pg.send_together(statements)
            except self.errors as exc:
                self._end(False)
                self.batch_ended(self._failed(exc))
                return
            self.commits += 1
        self.batch_ended(None)

    def _begin(self, durable: bool) -> None:
        self._pg.execute("BEGIN")
        if durable:
            self._pg.execute("SET LOCAL synchronous_commit TO on")

    def _in_transaction(self) -> bool:
        return self._pg.in_transaction()

    def _lock_schema(self) -> None:
        self._pg.execute(LOCK_KEY.format(function="pg_advisory_xact_lock"), (SCHEMA_LOCK,))

    # leadership (leadership.py) --------------------------------------------------------------
    def try_lock(self, key: int) -> bool:
        """Take the session-level advisory lock `key` if free: held until this session ends,
        and every later write is refused if the session is lost (PgConnection.leading)."""
        query = LOCK_KEY.format(function="pg_try_advisory_lock")
        taken = self._db.execute(query, (key,)).fetchone()[0]
        if taken:
            self._pg.leading = True
        return bool(taken)

    @property
    def lost_lock(self) -> bool:
        """The session that held the lock is gone (it cannot come back)."""
        return self._pg.lost_lead

    def server_time(self) -> float:
        """The database server's clock (seconds since the epoch): the one clock every manager
        shares."""
        now = self._db.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
        return float(now[0])
