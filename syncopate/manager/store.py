"""SQLite persistence for the manager: `<data-dir>/syncopate.db` in WAL mode.

Each record is one row holding its fields as JSON; a project's output is one row per line, its
oldest lines deleted as new ones come. Two kinds of commit:

- durable (`synchronous=FULL`): ownership and controller changes; on disk before the answer;
- ordinary (`synchronous=NORMAL`): node reports; they survive a crash of the manager process
  (kill -9) because the WAL is in the OS's hands when the answer goes out, and cost no fsync.

Node reports come by the thousand a second from a large fleet, so they are grouped: `batch()`
joins the open batch (one transaction), and `flush()` commits it; the caller answers its
reports after that commit (group_commit.py). Any other write commits the open batch before
it begins, so writes reach the disk in the order they were made. The WAL is checkpointed on a
thread (checkpoints.py).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from syncopate.errors import StoreFailed
from syncopate.manager import secret_box
from syncopate.manager.checkpoints import Checkpointer
from syncopate.manager.command_rows import CommandRows, dump_record
from syncopate.manager.records import NodeRecord, ProjectRecord
from syncopate.manager.token_book import TOKENS_SCHEMA, TokenBook
from syncopate.states import Desired, NodeStatus, ProjectStatus

# 2: the log_lines table, and log fields in project records (an older manager cannot read them).
# 3: the commands table (the command channel), and `kind` in node records.
# 4: `env` and `history` in project records.
# 5: `secrets` in project records, sealed with `<data-dir>/secrets.key` (secret_box.py).
# 6: `time` in log_lines (when the line was produced; NULL for lines kept before).
# 7: the controller_tokens table (token_book.py): people's tokens with roles; the tokens kept
#    before in meta (`controller-token:<name>`) move there as admins' (they could do anything).
SCHEMA_VERSION = 7
DB_NAME = "syncopate.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log_lines (
    project TEXT NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL, time REAL,
    PRIMARY KEY (project, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY, node TEXT NOT NULL, state TEXT NOT NULL, user TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_by_node ON commands(node, id);
CREATE INDEX IF NOT EXISTS commands_by_state ON commands(state, id);
"""

# A full disk refuses every write; one line a minute says so without filling the log too.
FAILURE_LOG_INTERVAL = 60.0
log = logging.getLogger("syncopate.manager")

_NODE_TRANSIENT = {"last_contact", "alive_since", "address", "metrics"}
# `secrets` is stored sealed, not as it is (see save_project).
_PROJECT_TRANSIENT = {"move_started", "secrets"}


class Store(CommandRows):
    """The manager's database (the `storage.Storage` the cluster and the command book use).

    Calls are synchronous and short; the event loop makes them.
    """

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = data_dir / DB_NAME
        # Variables and token hashes are nobody else's business.
        self.path.touch(mode=0o600, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        # Checkpoints fsync: the Checkpointer's thread does them, never a COMMIT on the loop.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.executescript(_SCHEMA + TOKENS_SCHEMA)
        self._add_log_times()
        self._in_tx = False
        self._batch_open = False
        self.batch_ended: Callable[[StoreFailed | None], None] = lambda error: None
        self.commits = 0  # transactions committed, batches included (the checkpoints follow it)
        self.tokens = TokenBook(self._db, self.transaction, self.get_meta, self.set_meta)
        self.failed_writes = 0  # since start, for the log and /metrics
        self._failure_logged = -FAILURE_LOG_INTERVAL
        version = self.get_meta("schema-version")
        if version is not None and int(version) > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} was written by a newer Syncopate (schema {version}); upgrade first"
            )
        if version is None or int(version) < SCHEMA_VERSION:
            # The schema script above added what was missing; people's tokens move to theirs.
            self.tokens.migrate_legacy()
            self.set_meta("schema-version", str(SCHEMA_VERSION), durable=True)
        sealed_check = self.get_meta(secret_box.CHECK_KEY)
        try:
            self.secrets = secret_box.load_or_create(data_dir, sealed_check)
        except BaseException:
            self._db.close()
            raise
        if sealed_check is None:
            self.set_meta(secret_box.CHECK_KEY, self.secrets.sealed_check(), durable=True)
        self.checkpointer = Checkpointer(self.path, lambda: self.commits)

    def close(self) -> None:
        self.flush()
        self.checkpointer.stop()
        self._db.close()

    def _add_log_times(self) -> None:
        """Schema 6: a database from before has log_lines without `time`; add it."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(log_lines)")}
        if "time" not in columns:
            self._db.execute("ALTER TABLE log_lines ADD COLUMN time REAL")

    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[None]:
        """One transaction; nested calls join the outer one. `durable` fsyncs at commit.

        A write the database refuses (a full disk, an I/O error, a lock held too long) is rolled
        back and raises StoreFailed, naming SQLite's reason: at BEGIN, in a statement, or at
        COMMIT, which is where a full disk shows (the pages are written then).
        """
        if self._in_tx:
            yield
            return
        self.flush()  # what was batched is older: it commits first
        try:
            if durable:
                self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._end(durable)
            raise self._failed(exc) from exc
        self._in_tx = True
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            self._end(durable)
            if isinstance(exc, sqlite3.Error):
                raise self._failed(exc) from exc
            raise
        else:
            self._in_tx = False
            self.commits += 1
            if durable:
                with suppress(sqlite3.Error):
                    self._db.execute("PRAGMA synchronous=NORMAL")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Join the open batch, beginning one if none is open; `flush()` commits it.

        Inside a transaction it joins that instead. A join that fails (the database refuses a
        statement, or the caller raises) ends the whole batch: it is rolled back, `batch_ended`
        hears of it, and the join raises (StoreFailed for the database's refusal). Rare enough
        that the batch does not pay a savepoint per join to roll one back alone.
        """
        if self._in_tx:
            yield
            return
        if not self._batch_open:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._end(False)
                raise self._failed(exc) from exc
            self._batch_open = True
        self._in_tx = True
        try:
            yield
        except BaseException as exc:
            self._batch_open = False
            self._end(False)
            error = self._failed(exc) if isinstance(exc, sqlite3.Error) else None
            self.batch_ended(error or StoreFailed(f"a write in the batch failed: {exc!r}"))
            if error is not None:
                raise error from exc
            raise
        self._in_tx = False

    def flush(self) -> None:
        """Commit the open batch (if any) and tell `batch_ended`; a refusal rolls it back whole
        and is told as the error (not raised: the caller's own write is another matter)."""
        if not self._batch_open:
            return
        self._batch_open = False
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._end(False)
            self.batch_ended(self._failed(exc))
            return
        self.commits += 1
        self.batch_ended(None)

    def _end(self, durable: bool) -> None:
        """Roll back what is open after a failure, and leave the connection ready for the next."""
        self._in_tx = False
        # SQLite rolls some failures back by itself; a second ROLLBACK would be an error.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                log.warning("could not roll back a failed write in %s", self.path, exc_info=True)
        if durable:
            with suppress(sqlite3.Error):
                self._db.execute("PRAGMA synchronous=NORMAL")

    def _failed(self, exc: sqlite3.Error) -> StoreFailed:
        """The error to raise for a refused write; logged, but at most once a minute."""
        self.failed_writes += 1
        now = time.monotonic()
        if now - self._failure_logged >= FAILURE_LOG_INTERVAL:
            self._failure_logged = now
            log.warning(
                "database write failed: %s (%s; %d refused write(s) so far); every change "
                "that needed it was refused and nothing changed",
                exc,
                self.path,
                self.failed_writes,
            )
        return StoreFailed(f"database write failed: {exc}")

    # meta -------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str, durable: bool = True) -> None:
        with self.transaction(durable):
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def meta_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        """(key, value) of every meta entry whose key starts with `prefix`."""
        rows = self._db.execute(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        )
        return [(str(key), str(value)) for key, value in rows]

    # nodes ------------------------------------------------------------------------------------
    def _upsert(self, table: str, name: str, data: str) -> None:
        with self.transaction():
            self._db.execute(
                f"INSERT INTO {table}(name, data) VALUES(?, ?) "
                "ON CONFLICT(name) DO UPDATE SET data = excluded.data",
                (name, data),
            )

    def _delete(self, table: str, name: str) -> None:
        with self.transaction():
            self._db.execute(f"DELETE FROM {table} WHERE name = ?", (name,))

    def save_node(self, node: NodeRecord) -> None:
        self._upsert("nodes", node.name, dump_record(node, _NODE_TRANSIENT))

    def delete_node(self, name: str) -> None:
        self._delete("nodes", name)

    def load_nodes(self) -> list[NodeRecord]:
        nodes = []
        for (data,) in self._db.execute("SELECT data FROM nodes ORDER BY name"):
            fields = json.loads(data)
            fields["status"] = NodeStatus(fields["status"])
            nodes.append(NodeRecord(**fields))
        return nodes

    # projects ---------------------------------------------------------------------------------
    def save_project(self, project: ProjectRecord) -> None:
        sealed: dict[str, Any] = {"secrets": self.secrets.seal(project.secrets)}
        if secret_box.url_password(project.url) is not None:
            # A password in the URL is a secret too: the row shows it masked.
            sealed["url"] = secret_box.mask_url(project.url)
            sealed["url-sealed"] = self.secrets.seal_text(project.url)
        self._upsert("projects", project.name, dump_record(project, _PROJECT_TRANSIENT, sealed))

    def delete_project(self, name: str) -> None:
        self._delete("projects", name)

    def load_projects(self) -> list[ProjectRecord]:
        projects = []
        for (data,) in self._db.execute("SELECT data FROM projects ORDER BY name"):
            fields = json.loads(data)
            fields["status"] = ProjectStatus(fields["status"])
            fields["desired"] = Desired(fields["desired"])
            fields["secrets"] = self.secrets.open(fields.get("secrets", ""))
            if "url-sealed" in fields:
                fields["url"] = self.secrets.open_text(fields.pop("url-sealed"))
            projects.append(ProjectRecord(**fields))
        return projects

    # output -----------------------------------------------------------------------------------
    def append_log_lines(
        self,
        project: str,
        first: int,
        lines: list[str],
        keep: int,
        times: list[float] | None = None,
    ) -> None:
        """Store lines numbered `first`, `first + 1`, ...; keep the project's last `keep` lines.

        `times`: when each line was produced (seconds since the epoch; None: unknown).
        Only the lines that fall out are deleted (a range of the primary key), so the cost
        follows the number of lines added, not the number kept.
        """
        stamps: list[float | None] = list(times) if times is not None else [None] * len(lines)
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO log_lines(project, seq, line, time) VALUES(?, ?, ?, ?)",
                [
                    (project, first + index, line, stamp)
                    for index, (line, stamp) in enumerate(zip(lines, stamps, strict=True))
                ],
            )
            self._db.execute(
                "DELETE FROM log_lines WHERE project = ? AND seq < ?",
                (project, first + len(lines) - keep),
            )

    def log_lines(self, project: str, limit: int) -> list[tuple[int, str, float | None]]:
        """The project's last `limit` lines with their numbers and times, oldest first."""
        rows = self._db.execute(
            "SELECT seq, line, time FROM log_lines WHERE project = ? ORDER BY seq DESC LIMIT ?",
            (project, limit),
        ).fetchall()
        return [
            (int(seq), str(line), None if time is None else float(time))
            for seq, line, time in reversed(rows)
        ]

    def delete_log_lines(self, project: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM log_lines WHERE project = ?", (project,))
