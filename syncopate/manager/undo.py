"""Undo for the manager's memory: a write the store refuses leaves memory as it was (DESIGN §14).

The manager changes its records in memory and writes them in one store transaction. The store
can refuse at COMMIT (a full disk shows only then), after memory has changed. So while a write
is open, every record is kept (its field values) before its first change, every map entry
before it is set or deleted, and events and wakes wait; if the write fails, the records and
entries are put back and the events are dropped, else the events go out.

Only references to field values are kept (cheap enough for a node's report, the hot path), so
while a write is open a record's containers (dicts, lists) are replaced, never changed in place.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncopate.manager.group_commit import GroupCommit

_ABSENT = object()
_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}


def _fields(kind: type) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    known = _FIELDS.get(kind)
    if known is None:
        names = tuple(f.name for f in dataclasses.fields(kind))
        getter = operator.attrgetter(*names)
        known = _FIELDS[kind] = (names, lambda record: tuple(getter(record)))
    return known


class Undo:
    """What one open write changed in memory, to put back if the store refuses it."""

    __slots__ = ("_effects", "_entries", "_records")

    def __init__(self) -> None:
        self._records: dict[int, tuple[Any, tuple[Any, ...]]] = {}
        self._entries: list[tuple[MutableMapping[Any, Any], Any, Any]] = []
        self._effects: list[tuple[Callable[..., None], tuple[Any, ...]]] = []

    def keep(self, record: Any) -> None:
        """Keep a record's fields as they are now, unless kept already in this write."""
        # The entry holds the record, so its id cannot be reused while the write is open.
        if id(record) not in self._records:
            self._records[id(record)] = (record, _fields(type(record))[1](record))

    def keep_entry(self, mapping: MutableMapping[Any, Any], key: Any) -> None:
        """Keep `mapping[key]` (or its absence) as it is now, before it is set or deleted."""
        self._entries.append((mapping, key, mapping.get(key, _ABSENT)))

    def later(self, effect: Callable[..., None], *args: Any) -> None:
        """Call `effect(*args)` once the write is committed (never if it is refused)."""
        self._effects.append((effect, args))

    def kept(self) -> Iterable[Any]:
        """The records kept so far."""
        return [record for record, _ in self._records.values()]

    def restore(self) -> None:
        """Put every kept record and entry back as it was; forget the effects."""
        for record, values in self._records.values():
            for name, value in zip(_fields(type(record))[0], values, strict=True):
                setattr(record, name, value)
        # Newest first: an entry changed twice ends as it was before the first change.
        for mapping, key, value in reversed(self._entries):
            if value is _ABSENT:
                mapping.pop(key, None)
            else:
                mapping[key] = value
        self._effects.clear()

    def run_effects(self) -> None:
        effects, self._effects = self._effects, []
        for effect, args in effects:
            effect(*args)


class Undoable:
    """What changes memory in store transactions: `_write()` opens one, and a refusal by the
    store puts memory back (`_put_back`) and drops the announcements."""

    _undo: Undo | None = None  # the open write, if any
    group: GroupCommit | None = None  # where batched writes go (group_commit.py), if anywhere

    def _transaction(self, durable: bool) -> AbstractContextManager[None]:
        """The store transaction a write runs in."""
        raise NotImplementedError

    def _put_back(self, undo: Undo) -> None:
        undo.restore()

    @contextmanager
    def _write(self, durable: bool = False, batched: bool = False) -> Iterator[Undo]:
        """One change of memory and store, whole or not at all; a nested write joins the outer.

        Changes to records inside are kept (`Undo.keep`) first. If the store refuses the write
        (or anything else fails in it), memory is put back as it was and nothing is announced.
        `batched` (a node's report): the write joins the open group commit, if grouping is on,
        and is committed with it (group_commit.py); any other write commits that batch first.
        """
        if self._undo is not None:
            yield self._undo
            return
        group = self.group
        if batched and group is not None and group.enabled:
            yield from self._batched_write(group)
            return
        if group is not None:
            group.flush()
        undo = self._undo = Undo()
        try:
            with self._transaction(durable):
                yield undo
        except BaseException:
            self._undo = None
            self._put_back(undo)
            raise
        self._undo = None
        undo.run_effects()

    def _batched_write(self, group: GroupCommit) -> Iterator[Undo]:
        undo = self._undo = Undo()
        group.begin(undo)
        try:
            with group.store.batch():
                yield undo
        except BaseException:
            self._undo = None
            if group.forget(undo):  # else the whole batch ended, and put it back with the rest
                self._put_back(undo)
            raise
        self._undo = None
        group.joined()
