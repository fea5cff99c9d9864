"""Group commit with a batch in flight (group_commit.py), against a store that sends batches
(as pg_store.PgStore does): pure bookkeeping, no database. The store here records what the
group asks of it, and says when a batch ends as the real one does (`batch_ended`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from syncopate.errors import StoreFailed
from syncopate.manager.group_commit import GroupCommit, SendsBatches
from syncopate.manager.undo import Undo


@dataclass
class Sending:
    """A store's batch bookkeeping: the open batch's writes, the one sent, what it was asked."""

    open: list[str] = field(default_factory=list)
    sent: list[list[str]] = field(default_factory=list)
    dropped: list[list[str]] = field(default_factory=list)
    committed: list[list[str]] = field(default_factory=list)

    def batch_ended(self, error: StoreFailed | None) -> None:  # replaced by the group
        raise AssertionError("the group did not take batch_ended")

    def send_batch(self) -> None:
        self.sent.append(self.open)
        self.open = []

    def drop_batch(self) -> None:
        self.dropped.append(self.open)
        self.open = []

    def flush(self) -> None:
        if self.sent:  # the one in flight first (waited for), then the open one
            self.land(None)
        if self.open:
            self.committed.append(self.open)
            self.open = []
            self.batch_ended(None)

    def land(self, error: StoreFailed | None) -> None:
        """The batch in flight ends (the store's thread is done with it)."""
        batch = self.sent.pop(0)
        if error is None:
            self.committed.append(batch)
        self.batch_ended(error)


@dataclass
class Rec:
    """A record of memory a write changes (two fields, as Undo keeps records of several)."""

    value: int = 0
    name: str = "r"


def write(group: GroupCommit, store: Sending, record: Rec, value: int, name: str) -> Undo:
    """A batched write, as Undoable._batched_write makes one."""
    undo = Undo()
    group.begin(undo)
    undo.keep(record)
    record.value = value
    store.open.append(name)
    group.joined()
    return undo


async def started(window: float = 10.0) -> tuple[GroupCommit, Sending, list[Undo]]:
    store = Sending()
    restored: list[Undo] = []

    def put_back(undo: Undo) -> None:
        restored.append(undo)
        undo.restore()

    group = GroupCommit(store, put_back)  # type: ignore[arg-type]
    group.start(window)
    assert isinstance(store, SendsBatches)
    return group, store, restored


async def test_a_refused_batch_in_flight_takes_the_one_gathering_with_it() -> None:
    group, store, restored = await started()
    record = Rec()
    first = write(group, store, record, 1, "w1")
    group._due()  # its window ends: sent, in flight
    assert store.sent == [["w1"]]
    waiting_first = asyncio.ensure_future(group.settled())
    await asyncio.sleep(0)  # it waits from now, as a handler does right after its write
    second = write(group, store, record, 2, "w2")  # made on top of w1
    waiting_second = asyncio.ensure_future(group.settled())
    await asyncio.sleep(0)
    group._due()  # due, but waits for the one in flight
    assert store.sent == [["w1"]] and store.open == ["w2"]

    store.land(StoreFailed("disk full"))

    assert restored == [second, first]  # newest first
    assert record.value == 0  # as it was before both
    assert store.dropped == [["w2"]] and store.committed == []
    for waiting in (waiting_first, waiting_second):
        with pytest.raises(StoreFailed, match="disk full"):
            await waiting


async def test_the_batch_gathering_is_sent_when_the_one_in_flight_lands() -> None:
    group, store, restored = await started()
    record = Rec()
    write(group, store, record, 1, "w1")
    group._due()
    write(group, store, record, 2, "w2")
    group._due()
    store.land(None)
    assert store.committed == [["w1"]] and store.sent == [["w2"]]  # sent at once
    store.land(None)
    assert store.committed == [["w1"], ["w2"]] and restored == [] and record.value == 2
    assert (group.batches, group.grouped) == (2, 2)


async def test_a_full_batch_is_sent_and_its_writers_wait_for_it() -> None:
    group, store, _ = await started()
    record = Rec()
    for n in range(1000):  # MAX_JOINS: the last join sends it
        write(group, store, record, n, f"w{n}")
    assert len(store.sent) == 1 and not store.open
    waiting = asyncio.ensure_future(group.settled())  # none open: the one in flight
    await asyncio.sleep(0)
    assert not waiting.done()
    store.land(None)
    await waiting


async def test_a_flush_waits_for_the_batch_in_flight_then_commits_the_open_one() -> None:
    group, store, _ = await started()
    record = Rec()
    write(group, store, record, 1, "w1")
    group._due()
    write(group, store, record, 2, "w2")
    group.flush()  # another write is about to begin
    assert store.committed == [["w1"], ["w2"]] and not store.sent and not store.open
    assert group._flying is None and group._done is None


async def test_a_handler_hears_of_a_refused_batch_it_joined_though_a_later_one_commits() -> None:
    group, store, _ = await started()
    with group.watching() as joined:
        write(group, store, Rec(), 1, "w1")
    group._due()
    store.land(StoreFailed("connection reset"))  # before the handler waits
    write(group, store, Rec(), 2, "w2")  # another handler's, later
    group._due()
    waiting = asyncio.ensure_future(group.settled(joined))
    await asyncio.sleep(0)
    store.land(None)
    with pytest.raises(StoreFailed, match="connection reset"):
        await waiting


async def test_a_report_that_wrote_nothing_waits_for_the_batch_memory_shows() -> None:
    """It was judged against memory (a log cursor, say) that the batch in flight changed: its
    answer must not say "taken" before that batch is committed."""
    group, store, _ = await started()
    write(group, store, Rec(), 1, "w1")
    group._due()
    waiting = asyncio.ensure_future(group.settled([]))
    await asyncio.sleep(0)
    assert not waiting.done()
    store.land(StoreFailed("statement timeout"))
    with pytest.raises(StoreFailed, match="statement timeout"):
        await waiting
