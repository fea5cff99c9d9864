"""PostgreSQL, the store several managers can share (DESIGN §13): `--store postgresql://...`.

What the store does is sql_store.py's; this is how PostgreSQL does it:

- one session (psycopg 3, pg_connection.py), the one whose advisory lock makes this manager
  the leader: every write of the leader goes through it, so a leader that lost it writes
  nothing more (fencing), and the writes are in the one order the event loop made them. A pool
  would add sessions the lock does not fence, and nothing to do in parallel;
- ordinary commits (node reports) with `synchronous_commit` off, the session's default: the
  database server has them when the answer goes out, so they survive the loss of any manager,
  and they cost no wait for its disk; durable ones (`SET LOCAL synchronous_commit TO on`) are
  on its disk before the answer;
- node reports, grouped (group_commit.py), do not make the event loop wait: a batch's
  statements are kept as its writes are made, and a thread of the store's sends them in
  pipeline mode (BEGIN, the statements, COMMIT: one round trip) while the loop goes on; the
  answers wait for the commit. Any other call (a controller's write, a read) is synchronous
  on the loop, after the batch in flight: `waited` counts the seconds the loop spent in them
  (/metrics: syncopate_store_wait_seconds_total);
- the schema, from version 7 on (migrations.py), under an advisory lock, so managers that start
  together do not run a step twice;
- no checkpoints of ours: the server does its own.

The data dir still holds what is the manager's own: secrets.key, controller.json, the join
password's file. psycopg comes with the `postgresql` extra (`pip install 'syncopate[postgresql]'`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syncopate.errors import StoreFailed
from syncopate.manager.migrations import Migration, migrate, statements
from syncopate.manager.pg_connection import KeptStatement, KeptStatements, PgConnection, shown
from syncopate.manager.sql_store import SqlStore

log = logging.getLogger("syncopate.manager")

# Advisory locks are the database's, and a database may hold several fleets, each in a schema
# of its own (`?options=-csearch_path%3DNAME` in the URL): a lock's key is (the schema's hash,
# what it locks), so one fleet's manager never waits for another's.
SCHEMA_LOCK = 1  # while a migration runs
LOCK_KEY = "SELECT {function}(hashtext(current_schema()), ?)"

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
        self._tx_locked = False
        self.sent = 0  # batches sent on the store's thread (the tests read it)
        self._flying: concurrent.futures.Future[None] | None = None
        self._sender = concurrent.futures.ThreadPoolExecutor(1, "syncopate-pg-batches")
        self._sender.submit(lambda: None).result()  # its thread now: not when a batch is due
        try:
            self._open_common()
            with self.transaction(durable=True):
                self._lock_schema()  # CREATE IF NOT EXISTS races with itself in PostgreSQL
                self._db.execute(_META)
            migrate(self, STEPS)
            self._open_secrets(data_dir)
        except BaseException:
            self._sender.shutdown(wait=False)
            self._pg.close()
            raise

    @property
    def waited(self) -> float:
        """Seconds the event loop spent in calls to the database server."""
        return self._pg.waited

    # batches (group commit): kept, then sent while the loop goes on ------------------------------
    @contextmanager
    def batch(self) -> Iterator[None]:
        """Join the open batch (sql_store's `batch()`), its statements kept, not sent. A join
        that fails takes its own statements out and the batch lives on (the caller puts its
        records back: GroupCommit.forget)."""
        if self._in_tx:
            yield
            return
        self._batch_open = True
        kept = self._kept
        mark = len(kept.statements)
        self._pg.keeping, self._in_tx = kept, True
        try:
            yield
        except BaseException:
            del kept.statements[mark:]
            raise
        finally:
            self._pg.keeping, self._in_tx = None, False

    def send_batch(self) -> None:
        """Send the open batch on the store's thread; `batch_ended` hears how it went on the
        loop (group_commit.SendsBatches). One at a time: the group sends the next after."""
        assert self._flying is None, "a batch is in flight already"
        loop = asyncio.get_running_loop()
        statements = self._take_batch()
        if not statements:
            self.batch_ended(None)  # its writes changed nothing stored: it has ended
            return
        flying = self._sender.submit(self._pg.send_together, statements, False)
        self.sent += 1
        self._flying = flying

        def landed(_: object) -> None:
            # A loop closed meanwhile (the manager stopped) hears nothing; close() did.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._landed, flying)

        flying.add_done_callback(landed)

    def drop_batch(self) -> None:
        """Forget the open batch (the one in flight, under it, was refused)."""
        self._take_batch()

    def flush(self) -> None:
        """Commit the open batch now, after the one in flight; `batch_ended` hears of each."""
        if self._in_tx:
            return  # inside a write (a batch join, a transaction): it commits with that
        # Telling how one ended may send the next (GroupCommit._ended): wait for that too.
        while (flying := self._flying) is not None:
            started = time.perf_counter()
            concurrent.futures.wait([flying])
            self._pg.waited += time.perf_counter() - started
            self._landed(flying)
        statements = self._take_batch()
        if statements is None:
            return
        try:
            if statements:
                self._pg.send_together(statements)
        except Exception as exc:
            self.batch_ended(self._refused(exc))
            return
        if statements:
            self.commits += 1
        self.batch_ended(None)

    def _take_batch(self) -> list[KeptStatement] | None:
        """The open batch's statements, taken (None: no batch is open)."""
        if not self._batch_open:
            return None
        self._batch_open = False
        statements, self._kept.statements = self._kept.statements, []
        return statements

    def _landed(self, flying: concurrent.futures.Future[None]) -> None:
        """The batch in flight has ended: tell how (once: a flush may have waited for it)."""
        if self._flying is not flying:
            return
        self._flying = None
        error = flying.exception()
        if error is None:
            self.commits += 1
            self.batch_ended(None)
        else:
            self.batch_ended(self._refused(error))

    def _refused(self, exc: BaseException) -> StoreFailed:
        """The refusal to tell of a batch that failed: the database's (logged once a minute),
        or anything else (a bug: logged with its traceback, and counted the same)."""
        if not isinstance(exc, self.errors):
            log.error("a batch of writes failed", exc_info=exc)
        return self._failed(exc)

    def log_lines(self, project: str, limit: int) -> list[tuple[int, str, float | None]]:
        """As sql_store's, after the batch open now and the one in flight: a project's lines
        are read with the record that numbers them (memory) as it is."""
        self.flush()
        return super().log_lines(project, limit)

    def close(self) -> None:
        try:
            super().close()  # flushes
        finally:
            self._sender.shutdown(wait=True)

    # transactions: the loop's alone from BEGIN to their end -----------------------------------
    def _begin(self, durable: bool) -> None:
        self._pg.lock.acquire()
        self._tx_locked = True
        self._pg.execute("BEGIN")
        if durable:
            self._pg.execute("SET LOCAL synchronous_commit TO on")

    def _after(self, durable: bool) -> None:
        if self._tx_locked:
            self._tx_locked = False
            self._pg.lock.release()

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
