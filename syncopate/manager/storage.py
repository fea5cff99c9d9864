"""What the cluster and the command book need from the database, as an interface: `Storage`.

The cluster (cluster.py and its parts) talks to this protocol only, and the command book
(commands.py) needs nothing beyond it, so another database (PostgreSQL, say) can be added beside
`store.Store` (SQLite, the one implementation today) without touching the cluster's rules.

The contract an implementation keeps:

- `transaction(durable)` opens one transaction; a call inside an open one joins it. `durable`
  means the commit is on disk (fsync) before it returns. A write the database refuses is rolled
  back and raises `errors.StoreFailed`, at the latest when the outermost transaction commits.
- Every write method may be called inside or outside a transaction; outside, it commits alone.
- `batch()` joins the open batch (beginning one). `flush()` commits it and calls
  `batch_ended(None)`, or rolls it back whole and calls `batch_ended(error)`. A
  `transaction()` flushes first, so writes commit in the order they were made (group commit
  of node reports: group_commit.py). SQLite keeps a transaction open across the joins (a join
  that fails ends the batch: rolled back whole, `batch_ended(error)`); PostgreSQL keeps the
  joins' statements and sends them at the commit (a join that fails takes out its own, and
  the batch lives on; a read sees none of the batch before), on a thread of its own if asked
  (`send_batch()`: group_commit.SendsBatches).
- Records are stored whole; a record's transient fields (monotonic times, a node's address, a
  command's `since`) are not stored, and come back at their defaults from the `load_*` calls.

(Opening the store, and its meta table, belong to whoever makes it: server.py and app.py.)

Both implementations are SQL (sql_store.py); `Connection` is what they need of a database
connection: sqlite3's, or psycopg's behind an adapter (pg_store.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from syncopate.errors import StoreFailed
from syncopate.manager.records import CommandRecord, NodeRecord, ProjectRecord
from syncopate.states import CommandState


class Storage(Protocol):
    """The manager's database, as the cluster and the command book use it."""

    def transaction(self, durable: bool = False) -> AbstractContextManager[None]:
        """One transaction; nested calls join the outer one. `durable` fsyncs at commit."""
        ...

    # Told when a batch ends: None once committed, the refusal if rolled back.
    batch_ended: Callable[[StoreFailed | None], None]

    def batch(self) -> AbstractContextManager[None]:
        """Join the open batch, beginning one if none is open (inside a transaction: join it)."""
        ...

    def flush(self) -> None:
        """Commit the open batch, if any; `batch_ended` hears how it went (nothing raised)."""
        ...

    def close(self) -> None:
        """Let go of the database (the manager is stopping; tests restart on the same files)."""
        ...

    # nodes and projects -----------------------------------------------------------------------
    def save_node(self, node: NodeRecord) -> None: ...

    def delete_node(self, name: str) -> None: ...

    def load_nodes(self) -> list[NodeRecord]:
        """Every stored node, by name."""
        ...

    def save_project(self, project: ProjectRecord) -> None: ...

    def delete_project(self, name: str) -> None: ...

    def load_projects(self) -> list[ProjectRecord]:
        """Every stored project, by name."""
        ...

    # a project's output -----------------------------------------------------------------------
    def append_log_lines(
        self,
        project: str,
        first: int,
        lines: list[str],
        keep: int,
        times: list[float] | None = None,
    ) -> None:
        """Store lines numbered `first`, `first + 1`, ...; keep the project's last `keep`.

        `times`: when each line was produced (seconds since the epoch); None: not known."""
        ...

    def log_lines(self, project: str, limit: int) -> list[tuple[int, str, float | None]]:
        """The project's last `limit` lines with their numbers and times, oldest first."""
        ...

    def delete_log_lines(self, project: str) -> None: ...

    # commands ---------------------------------------------------------------------------------
    def save_command(self, command: CommandRecord) -> None: ...

    def last_command_id(self) -> int:
        """The highest command id ever stored (0 when none)."""
        ...

    def get_command(self, command_id: int) -> CommandRecord | None: ...

    def load_commands_in(self, states: frozenset[CommandState]) -> list[CommandRecord]:
        """The commands in the given states, oldest first."""
        ...

    def last_command_of(self, node: str) -> CommandRecord | None: ...

    def find_commands(
        self,
        *,
        node: str | None = None,
        state: str | None = None,
        user: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[CommandRecord]:
        """Commands matching every filter given, newest first; `before` pages back by id."""
        ...


class Cursor(Protocol):
    """The result of a statement, as sqlite3 gives it."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A database connection in sqlite3's terms: `?` parameters, statements run at once."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    def close(self) -> None: ...
