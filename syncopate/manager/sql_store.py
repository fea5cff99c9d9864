"""The manager's store over SQL, whichever the database: `SqlStore`, the `storage.Storage` the
cluster and the command book use; `store.Store` (SQLite, the embedded default) and
`pg_store.PgStore` (PostgreSQL, DESIGN §13) give it a connection and say how to begin and end.

Each record is one row holding its fields as JSON; a project's output is one row per line, its
oldest lines deleted as new ones come. Two kinds of commit:

- durable: ownership and controller changes; on disk before the answer;
- ordinary: node reports; they survive a crash of the manager process (kill -9) because the
  database has them when the answer goes out, and cost no fsync of their own.

Node reports come by the thousand a second from a large fleet, so they are grouped: `batch()`
joins the open batch (one transaction), and `flush()` commits it; the caller answers its
reports after that commit (group_commit.py). Any other write commits the open batch before
it begins, so writes reach the disk in the order they were made.

The statements are written once, with `?` for parameters, in the SQL both databases speak
(upserts by `ON CONFLICT`, `"user"` quoted: a reserved word in PostgreSQL).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from syncopate.errors import StoreFailed
from syncopate.manager import secret_box
from syncopate.manager.command_rows import CommandRows, dump_record
from syncopate.manager.records import NodeRecord, ProjectRecord
from syncopate.manager.storage import Connection
from syncopate.manager.token_book import TokenBook
from syncopate.states import Desired, NodeStatus, ProjectStatus

# A full disk refuses every write; one line a minute says so without filling the log too.
FAILURE_LOG_INTERVAL = 60.0
log = logging.getLogger("syncopate.manager")

_NODE_TRANSIENT = {"last_contact", "alive_since", "address", "metrics"}
# `secrets` is stored sealed, not as it is (see save_project).
_PROJECT_TRANSIENT = {"move_started", "secrets"}


class SqlStore(CommandRows):
    """What both databases share; a subclass opens `_db` and provides the hooks below.

    Calls are synchronous and short; the event loop makes them.
    """

    _db: Connection
    where: str  # the database, for people (a path, or a URL without its password)
    # The database's own errors: caught, rolled back, and raised as StoreFailed.
    errors: tuple[type[BaseException], ...] = ()
    secrets: secret_box.SecretBox
    shared = False  # whether other managers may use the same database (PostgreSQL)

    def _open_common(self) -> None:
        """The store's state once `_db` is open (called by the subclass's constructor)."""
        self._in_tx = False
        self._batch_open = False
        self._batch_changes: int | None = None
        self.batch_ended: Callable[[StoreFailed | None], None] = lambda error: None
        self.commits = 0  # transactions committed, batches included
        self.tokens = TokenBook(self._db, self.transaction, self.get_meta, self.set_meta)
        self.failed_writes = 0  # since start, for the log and /metrics
        self._failure_logged = -FAILURE_LOG_INTERVAL

    def _open_secrets(self, data_dir: Path) -> None:
        """The secret box of the data dir's key, checked against the database (made, and its
        check stored, on a first start)."""
        sealed_check = self.get_meta(secret_box.CHECK_KEY)
        self.secrets = secret_box.load_or_create(data_dir, sealed_check)
        if sealed_check is None:
            self.set_meta(secret_box.CHECK_KEY, self.secrets.sealed_check(), durable=True)

    # hooks of the database ---------------------------------------------------------------------
    def _begin(self, durable: bool) -> None:
        """Begin a transaction (a durable one commits on disk before COMMIT returns)."""
        raise NotImplementedError

    def _after(self, durable: bool) -> None:
        """A transaction ended (committed or rolled back): undo what `_begin` set for it."""

    def _in_transaction(self) -> bool:
        raise NotImplementedError

    def _changes(self) -> int | None:
        """Rows changed by this connection so far, if the database counts them (a batch that
        changed none is rolled back, not committed)."""
        return None

    def _lock_schema(self) -> None:
        """Inside a migration's transaction: keep other managers out of the schema until it
        ends (migrations.py). Nothing to do where the transaction already excludes writers."""

    def close(self) -> None:
        self.flush()
        self._db.close()

    # transactions -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[None]:
        """One transaction; nested calls join the outer one. `durable` fsyncs at commit.

        A write the database refuses (a full disk, an I/O error, a lock held too long, a lost
        connection) is rolled back and raises StoreFailed, naming the database's reason: at
        BEGIN, in a statement, or at COMMIT, which is where a full disk shows in SQLite.
        """
        if self._in_tx:
            yield
            return
        self.flush()  # what was batched is older: it commits first
        try:
            self._begin(durable)
        except self.errors as exc:
            self._end(durable)
            raise self._failed(exc) from exc
        self._in_tx = True
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            self._end(durable)
            if isinstance(exc, self.errors):
                raise self._failed(exc) from exc
            raise
        else:
            self._in_tx = False
            self.commits += 1
            self._after(durable)

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
                self._begin(False)
            except self.errors as exc:
                self._end(False)
                raise self._failed(exc) from exc
            self._batch_open = True
            self._batch_changes = self._changes()
        self._in_tx = True
        try:
            yield
        except BaseException as exc:
            self._batch_open = False
            self._end(False)
            error = self._failed(exc) if isinstance(exc, self.errors) else None
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
        if self._batch_changes is not None and self._changes() == self._batch_changes:
            # Its writes changed nothing stored (reports with nothing new): no commit to count.
            self._end(False)
            self.batch_ended(None)
            return
        try:
            self._db.execute("COMMIT")
        except self.errors as exc:
            self._end(False)
            self.batch_ended(self._failed(exc))
            return
        self.commits += 1
        self._after(False)
        self.batch_ended(None)

    def _end(self, durable: bool) -> None:
        """Roll back what is open after a failure, and leave the connection ready for the next."""
        self._in_tx = False
        # SQLite rolls some failures back by itself; a second ROLLBACK would be an error.
        if self._in_transaction():
            try:
                self._db.execute("ROLLBACK")
            except self.errors:
                log.warning("could not roll back a failed write in %s", self.where, exc_info=True)
        try:
            self._after(durable)
        except self.errors:
            log.warning("could not reset the connection to %s", self.where, exc_info=True)

    def _failed(self, exc: BaseException) -> StoreFailed:
        """The error to raise for a refused write; logged, but at most once a minute."""
        self.failed_writes += 1
        message = str(exc) if isinstance(exc, StoreFailed) else f"database write failed: {exc}"
        now = time.monotonic()
        if now - self._failure_logged >= FAILURE_LOG_INTERVAL:
            self._failure_logged = now
            log.warning(
                "database write failed: %s (%s; %d refused write(s) so far); every change "
                "that needed it was refused and nothing changed",
                exc,
                self.where,
                self.failed_writes,
            )
        return StoreFailed(message)

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
        stamps: Sequence[float | None] = times if times is not None else [None] * len(lines)
        with self.transaction():
            self._db.executemany(
                "INSERT INTO log_lines(project, seq, line, time) VALUES(?, ?, ?, ?) "
                "ON CONFLICT(project, seq) DO UPDATE SET line = excluded.line, "
                "time = excluded.time",
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


# In the data dir of a manager whose store is PostgreSQL: {"store": URL}, mode 0600, so the
# commands run beside it (`manager token`, `join-command`...) open the same database.
STORE_FILE = "store.json"


def open_store(data_dir: Path, url: str | None = None) -> SqlStore:
    """The store a manager keeps its state in: PostgreSQL when `url` names a database
    (`postgresql://...`), else the one the data dir names (its store.json), else SQLite there.
    """
    from syncopate.manager.pg_connection import is_postgresql, shown
    from syncopate.manager.pg_store import PgStore
    from syncopate.manager.store import Store

    if url is None:
        url = remembered_store(data_dir)
    if url is not None and is_postgresql(url):
        return PgStore(url, data_dir)
    if url is not None:
        raise ValueError(f"--store {shown(url)!r}: give a postgresql://USER@HOST/DB URL, or none")
    return Store(data_dir)


def remembered_store(data_dir: Path) -> str | None:
    """The database URL a manager on PostgreSQL left in its data dir, if any."""
    path = data_dir / STORE_FILE
    if not path.exists():
        return None
    url = json.loads(path.read_text(encoding="utf-8")).get("store")
    return url if isinstance(url, str) else None
