"""Versioned schema migrations, run when a store opens, for both stores (DESIGN §13).

The schema's version is `schema-version` in the `meta` table. Each store lists its steps, each
bringing the schema to one version; opening a store runs, in order, every step newer than the
stored version, each in one durable transaction with the version it reaches, so a crash between
two steps leaves a database at one version or the next. A step takes the store's schema lock
first (`SqlStore._lock_schema`: an advisory lock in PostgreSQL, where several managers may
start together; SQLite's writer lock is already held) and reads the version again under it, so
two managers never run one step twice. A database written by a newer Syncopate is refused.

Versions are numbered once for both stores: a version names a change of what is stored, and a
store whose life began later (PostgreSQL: at 7) starts with one step to that version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncopate.manager.sql_store import SqlStore

VERSION_KEY = "schema-version"
log = logging.getLogger("syncopate.manager")


@dataclass(frozen=True)
class Migration:
    """One step: what it changes, and how (given the open store, inside its transaction)."""

    version: int
    what: str
    apply: Callable[[SqlStore], None]


def stored_version(store: SqlStore) -> int:
    """The schema's version as stored (0: a new database)."""
    value = store.get_meta(VERSION_KEY)
    return 0 if value is None else int(value)


def migrate(store: SqlStore, steps: Sequence[Migration]) -> list[int]:
    """Run the steps the database has not had yet; the versions run, in order.

    Raises RuntimeError for a database newer than the last step (written by a newer Syncopate).
    """
    latest = steps[-1].version
    found = stored_version(store)
    if found > latest:
        raise RuntimeError(
            f"{store.where} was written by a newer Syncopate (schema {found}, this one knows "
            f"{latest}); upgrade first"
        )
    done = []
    for step in steps:
        if step.version <= found:
            continue
        with store.transaction(durable=True):
            store._lock_schema()
            found = stored_version(store)  # another manager may have run it meanwhile
            if step.version <= found:
                continue
            step.apply(store)
            store.set_meta(VERSION_KEY, str(step.version))
        log.debug("%s: schema %d (%s)", store.where, step.version, step.what)
        done.append(step.version)
    return done


def statements(*sql: str) -> Callable[[SqlStore], None]:
    """A step that runs these statements, in order."""

    def apply(store: SqlStore) -> None:
        for statement in sql:
            store._db.execute(statement)

    return apply
