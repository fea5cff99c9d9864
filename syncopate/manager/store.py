"""SQLite, the embedded default store: `<data-dir>/syncopate.db` in WAL mode.

What the store does is sql_store.py's; this is how SQLite does it:

- durable commits run with `synchronous=FULL` (an fsync before the answer), ordinary ones (node
  reports) with `synchronous=NORMAL`: they survive a crash of the manager process (kill -9)
  because the WAL is in the OS's hands when the answer goes out, and cost no fsync;
- the WAL is checkpointed on a thread (checkpoints.py), never by a COMMIT on the event loop;
- its schema steps, from the first version on (migrations.py).
"""

from __future__ import annotations

import sqlite3
from contextlib import suppress
from pathlib import Path

from syncopate.manager.checkpoints import Checkpointer
from syncopate.manager.migrations import Migration, migrate, statements
from syncopate.manager.sql_store import SqlStore
from syncopate.manager.token_book import TOKENS_SCHEMA

DB_NAME = "syncopate.db"

_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


def _add_log_times(store: SqlStore) -> None:
    """A database from before has log_lines without `time`; add it (once: it may be there)."""
    columns = {row[1] for row in store._db.execute("PRAGMA table_info(log_lines)")}
    if "time" not in columns:
        store._db.execute("ALTER TABLE log_lines ADD COLUMN time REAL")


def _add_tokens(store: SqlStore) -> None:
    """People's tokens get a table; those kept before in meta move there as admins' (they
    could do anything then)."""
    store._db.execute(TOKENS_SCHEMA)
    store.tokens.migrate_legacy()


# Every version's step. Before schema steps existed the schema script created what was
# missing, so each step may find its tables there already (IF NOT EXISTS).
STEPS = (
    Migration(
        1,
        "nodes and projects, a JSON row each",
        statements(
            _META,
            "CREATE TABLE IF NOT EXISTS nodes (name TEXT PRIMARY KEY, data TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS projects (name TEXT PRIMARY KEY, data TEXT NOT NULL)",
        ),
    ),
    Migration(
        2,
        "log_lines, and log fields in project records",
        statements(
            "CREATE TABLE IF NOT EXISTS log_lines (project TEXT NOT NULL, seq INTEGER NOT NULL,"
            " line TEXT NOT NULL, PRIMARY KEY (project, seq)) WITHOUT ROWID"
        ),
    ),
    Migration(
        3,
        "the commands table (the command channel), and `kind` in node records",
        statements(
            "CREATE TABLE IF NOT EXISTS commands (id INTEGER PRIMARY KEY, node TEXT NOT NULL, "
            'state TEXT NOT NULL, "user" TEXT NOT NULL, data TEXT NOT NULL)',
            "CREATE INDEX IF NOT EXISTS commands_by_node ON commands(node, id)",
            "CREATE INDEX IF NOT EXISTS commands_by_state ON commands(state, id)",
        ),
    ),
    Migration(4, "`env` and `history` in project records", statements()),
    Migration(5, "`secrets` in project records, sealed with secrets.key", statements()),
    Migration(6, "`time` in log_lines (NULL for lines kept before)", _add_log_times),
    Migration(7, "the controller_tokens table: people's tokens with roles", _add_tokens),
)
SCHEMA_VERSION = STEPS[-1].version


class Store(SqlStore):
    """The SQLite database in a data dir (the `storage.Storage` the cluster uses)."""

    errors = (sqlite3.Error,)

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = data_dir / DB_NAME
        self.where = str(self.path)
        # Variables and token hashes are nobody else's business.
        self.path.touch(mode=0o600, exist_ok=True)
        self._sqlite = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db = self._sqlite
        self._sqlite.execute("PRAGMA journal_mode=WAL")
        self._sqlite.execute("PRAGMA synchronous=NORMAL")
        self._sqlite.execute("PRAGMA busy_timeout=5000")
        # Checkpoints fsync: the Checkpointer's thread does them, never a COMMIT on the loop.
        self._sqlite.execute("PRAGMA wal_autocheckpoint=0")
        self._sqlite.execute(_META)
        self._open_common()
        try:
            migrate(self, STEPS)
            self._open_secrets(data_dir)
        except BaseException:
            self._sqlite.close()
            raise
        self.checkpointer = Checkpointer(self.path, lambda: self.commits)

    def close(self) -> None:
        self.flush()
        self.checkpointer.stop()
        self._sqlite.close()

    def _begin(self, durable: bool) -> None:
        if durable:
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("BEGIN IMMEDIATE")

    def _after(self, durable: bool) -> None:
        if durable:
            with suppress(sqlite3.Error):
                self._db.execute("PRAGMA synchronous=NORMAL")

    def _in_transaction(self) -> bool:
        return self._sqlite.in_transaction

    def _changes(self) -> int:
        return self._sqlite.total_changes
