"""Group commit: node reports written together, each answered after the commit that holds it.

A fleet of 10,000 nodes sends thousands of reports a second; one transaction each cost more
than the rest of the report (issue 18). So a report's write joins the open batch (the store's
`batch()`: one transaction) and its answer waits (`committed()`) until
the batch commits: once the event loop has run what was ready when the batch began (window 0,
the default: the reports that arrived together, and no wait when they come one at a time), or
`window` seconds after it began, or as soon as it holds `MAX_JOINS` writes. Nothing is
acknowledged before it is committed, as before.

Measured (issue 18): an SQLite commit in WAL mode without fsync costs ~20 µs, grouped ~15 µs
(of ~700 µs a report costs the manager in all), so for SQLite the gain is small; it is the
write path a store whose commit is a network round trip and an fsync (PostgreSQL, DESIGN §13)
needs, and the one it shares.

Memory is changed at once, as by any write: the records a batched write changed are kept (its
`Undo`) until the batch ends. If the commit is refused every one of them is put back, newest
first, and every waiting report gets the refusal (503); else their events go out. Any other
write commits the open batch before it begins (`flush()`, also called by the store itself for
writers outside the cluster), so the batch's records are never changed by a write that could
end before it, and putting them back restores what was committed.

Off until `start()` (the manager starts it on its loop; a cluster built without a running loop,
as in the unit tests, never does) a batched write is an ordinary one.

A store that can commit a batch without the event loop waiting (PostgreSQL: `send_batch()`,
pg_store.py) gets its batches that way: one batch is in flight at a time, and the next gathers
meanwhile. If the one in flight is refused, the one gathering goes with it: its writes were
made on top of the refused ones (its records were serialized with their changes), so both are
put back, newest first, and every waiter of both gets the refusal. Any other write waits for
the batch in flight (`flush()`), as it waits for a commit of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from syncopate.errors import StoreFailed
from syncopate.manager.undo import Undo

if TYPE_CHECKING:
    from syncopate.manager.storage import Storage

log = logging.getLogger("syncopate.manager")

# A batch commits once it holds this many writes, whatever its age: bounds a commit's time.
MAX_JOINS = 1000


@runtime_checkable
class SendsBatches(Protocol):
    """A store that commits a batch while the event loop goes on (pg_store.py)."""

    def send_batch(self) -> None:
        """Send the open batch to be committed; `batch_ended` hears how it went, later, on
        the loop (or sooner, from a `flush()` that waited for it)."""
        ...

    def drop_batch(self) -> None:
        """Forget the open batch's writes: the one in flight, under them, was refused."""
        ...


class _Batch:
    """The writes of one batch, and the future their answers wait on."""

    __slots__ = ("done", "undos")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.undos: list[Undo] = []


class GroupCommit:
    """The open batch of a store (the writes in it, and the future their answers wait on), and
    the one in flight, if the store sends batches (`SendsBatches`)."""

    def __init__(self, store: Storage, put_back: Callable[[Undo], None]) -> None:
        self.store = store
        self.put_back = put_back
        self.window: float | None = None  # seconds a batch stays open; None: batching is off
        self.batches = 0  # committed so far, and the writes in them (the tests read them)
        self.grouped = 0
        self._undos: list[Undo] = []
        self._done: asyncio.Future[None] | None = None
        self._timer: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flying: _Batch | None = None  # sent (send_batch), its outcome not known yet
        self._wanted = False  # the open batch is due, and waits for the one in flight
        self._watch: list[asyncio.Future[None]] | None = None  # see watching()
        store.batch_ended = self._ended

    @property
    def enabled(self) -> bool:
        return self.window is not None

    def start(self, window: float) -> None:
        """Group writes from now on (called on the running loop: the manager's start)."""
        self._loop = asyncio.get_running_loop()
        self.window = window

    def stop(self) -> None:
        """Commit what is open and write alone from now on (the manager is stopping)."""
        self.flush()
        self.window = None

    def begin(self, undo: Undo) -> None:
        """A batched write is about to join: its records go back with the batch's if need be."""
        self._undos.append(undo)

    def forget(self, undo: Undo) -> bool:
        """A join failed before it joined (the batch lives on): take it out; False if the batch
        ended with it (its records were put back with the batch's)."""
        if undo in self._undos:
            self._undos.remove(undo)
            return True
        return False

    def joined(self) -> None:
        """The write joined the batch: its commit comes within the window, or now if full."""
        assert self._loop is not None
        if self._done is None:
            self._done = self._loop.create_future()
            # A refusal nobody waits for (every waiter gone) is not an error to log.
            self._done.add_done_callback(lambda done: done.cancelled() or done.exception())
            assert self.window is not None
            if self.window > 0:
                self._timer = self._loop.call_later(self.window, self._due)
            else:
                self._timer = self._loop.call_soon(self._due)
        if self._watch is not None and self._done not in self._watch:
            self._watch.append(self._done)
        if len(self._undos) >= MAX_JOINS:
            self._due()

    def _due(self) -> None:
        """The open batch's time came (its window, or it is full): send it while the loop goes
        on if the store can (once the one in flight has ended), else commit it now."""
        if not isinstance(self.store, SendsBatches):
            self.flush()
            return
        if self._flying is not None:
            self._wanted = True  # it goes when the one in flight has ended (_ended)
            return
        if self._done is None:
            return
        self._cancel_timer()
        self._wanted = False
        self._flying = _Batch(self._done)
        self._flying.undos, self._undos, self._done = self._undos, [], None
        try:
            self.store.send_batch()
        except Exception as exc:  # it could not go (no thread to send it on...): refused
            log.exception("could not send a batch of writes to the database")
            if self._flying is not None:
                self._ended(StoreFailed(f"could not send a batch of writes: {exc!r}"))

    def flush(self) -> None:
        """Commit the open batch now, if any, after the one in flight has ended (the store
        tells `_ended` how each went)."""
        self.store.flush()

    @contextmanager
    def watching(self) -> Iterator[list[asyncio.Future[None]]]:
        """The batches the writes made in this block join (a block with no await in it: one
        handler's), for `settled()`: a batch it joined may be refused while another, joined
        later, commits."""
        joined: list[asyncio.Future[None]] = []
        self._watch = joined
        try:
            yield joined
        finally:
            self._watch = None

    async def settled(self, joined: list[asyncio.Future[None]] | None = None) -> None:
        """Return once every batch in `joined` has committed, and the one memory shows now
        (open, or in flight): a report that wrote nothing was judged against what memory
        shows, which may not be committed yet. Raise a refusal (StoreFailed) of any."""
        waits = list(joined or ())
        now = self._done or (self._flying.done if self._flying is not None else None)
        if now is not None and now not in waits:
            waits.append(now)
        for done in waits:
            # Shielded: a caller that goes away must not cancel the others' wait.
            await asyncio.shield(done)

    def _ended(self, error: StoreFailed | None) -> None:
        flying = self._flying
        if flying is not None:
            self._flying = None
            if error is not None:
                # The open batch's writes were made on top of the refused ones: it goes too,
                # and first (newest first).
                self._end_open(error)
                if isinstance(self.store, SendsBatches):
                    self.store.drop_batch()
            self._end(flying.undos, flying.done, error)
            if self._wanted:
                self._due()
            return
        self._end_open(error)

    def _end_open(self, error: StoreFailed | None) -> None:
        undos, self._undos = self._undos, []
        done, self._done = self._done, None
        self._cancel_timer()
        self._wanted = False
        self._end(undos, done, error)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end(
        self, undos: list[Undo], done: asyncio.Future[None] | None, error: StoreFailed | None
    ) -> None:
        if error is not None:
            for undo in reversed(undos):
                self.put_back(undo)
        else:
            self.batches += 1
            self.grouped += len(undos)
            for undo in undos:
                undo.run_effects()
        if done is not None and not done.done() and not done.get_loop().is_closed():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
