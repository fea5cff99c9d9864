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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from syncopate.errors import StoreFailed
from syncopate.manager.undo import Undo

if TYPE_CHECKING:
    from syncopate.manager.storage import Storage

# A batch commits once it holds this many writes, whatever its age: bounds a commit's time.
MAX_JOINS = 1000


class GroupCommit:
    """The open batch of a store: the writes in it, and the future their answers wait on."""

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
                self._timer = self._loop.call_later(self.window, self.flush)
            else:
                self._timer = self._loop.call_soon(self.flush)
        if len(self._undos) >= MAX_JOINS:
            self.flush()

    def flush(self) -> None:
        """Commit the open batch now, if any (the store tells `_ended` how it went)."""
        self.store.flush()

    async def committed(self) -> None:
        """Return once the batch open now has committed (at once if none is open); raise its
        refusal (StoreFailed) if the store refused it."""
        if self._done is not None:
            # Shielded: a caller that goes away must not cancel the others' wait.
            await asyncio.shield(self._done)

    def _ended(self, error: StoreFailed | None) -> None:
        undos, self._undos = self._undos, []
        done, self._done = self._done, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if error is not None:
            for undo in reversed(undos):
                self.put_back(undo)
        else:
            self.batches += 1
            self.grouped += len(undos)
            for undo in undos:
                undo.run_effects()
        if done is not None and not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
