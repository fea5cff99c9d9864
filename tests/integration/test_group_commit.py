"""Node reports are committed together, each answered only once committed (issue 18).

A real manager with a wide group-commit window (so reports sent together certainly share a
batch), real HTTP, SimNodes reporting; what is stored is read by another connection, as another
process would. A refused batch puts every report in it back and refuses each; a report that
changes nothing stored is not written at all.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from syncopate.errors import Unavailable
from syncopate.manager.store import Store
from tests.helpers import RunningManager, SimNode, running_manager, wait_for
from tests.integration.test_store_faults import FULL, FullDisk, differences, inject, observe

NODES = 6
WINDOW = 0.5  # wide: reports sent at once land in one batch even on a loaded machine


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[tuple[RunningManager, list[SimNode]]]:
    async with running_manager(
        tmp_path / "manager", node_timeout=60.0, group_commit_window=WINDOW
    ) as manager:
        nodes = [await SimNode.join(manager.url, f"pi-{i}") for i in range(NODES)]
        try:
            async with manager.client() as ctl:
                for i in range(NODES):
                    await ctl.add(f"p{i}", f"https://example.com/p{i}.git", {"n": 0})
            for node in nodes:
                await node.poll()  # learns its project's URL and epoch
            yield manager, nodes
        finally:
            for node in nodes:
                await node.close()


def placed(manager: RunningManager, nodes: list[SimNode]) -> list[tuple[SimNode, str]]:
    """(node, its project) for every node, as the manager placed them."""
    projects = manager.state.cluster.projects
    by_node = {p.node: name for name, p in projects.items()}
    return [(node, by_node[node.name]) for node in nodes]


async def test_reports_sent_together_share_a_commit_and_each_is_stored_when_answered(
    fleet: tuple[RunningManager, list[SimNode]],
) -> None:
    manager, nodes = fleet
    group = manager.state.cluster.group
    batches, grouped = group.batches, group.grouped
    stored_when_answered: dict[str, Any] = {}

    async def report(node: SimNode, project: str) -> None:
        answer = await node.report(project, "running", {"n": 7})
        assert answer["update-result"] == "success"
        # Answered: another process reads it from the database at once.
        stored_when_answered[project] = manager.db_rows("projects")[project]["variables"]

    await asyncio.gather(*(report(node, project) for node, project in placed(manager, nodes)))

    assert stored_when_answered == {f"p{i}": {"n": 7} for i in range(NODES)}
    assert group.grouped - grouped == NODES
    # One batch, or a few if the machine was slow to send them: never one commit each.
    assert group.batches - batches < NODES


class FailingStatements(FullDisk):
    """The database refuses the statements of a write (an INSERT needing a new page), before
    any COMMIT: the batch ends there, with the reports that joined it before."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.full and sql.startswith("INSERT"):
            raise sqlite3.OperationalError(FULL)
        return super().execute(sql, *args)


@pytest.mark.parametrize("where", ["at COMMIT", "at a statement"])
async def test_a_refused_batch_puts_every_report_in_it_back(
    fleet: tuple[RunningManager, list[SimNode]], where: str
) -> None:
    manager, nodes = fleet
    before = await observe(manager)
    events: list[tuple[str, str]] = []
    manager.state.cluster.notify = lambda kind, name: events.append((kind, name))
    store = manager.state.store
    assert isinstance(store, Store)
    disk = inject(manager) if where == "at COMMIT" else FailingStatements(store._sqlite)
    store._db = disk
    disk.full = True

    async def report(node: SimNode, project: str) -> str:
        try:
            await node.report(project, "failed", {"n": 99}, **{"exit-code": 3})
        except Unavailable as refused:
            return str(refused)
        return "answered success"

    answers = await asyncio.gather(*(report(n, p) for n, p in placed(manager, nodes)))

    assert answers == [f"database write failed: {FULL}"] * NODES
    after = await observe(manager)
    assert after == before, differences(before, after)
    assert events == []
    disk.full = False
    node, project = placed(manager, nodes)[0]
    assert (await node.report(project, "running", {"n": 8}))["update-result"] == "success"
    assert manager.db_rows("projects")[project]["variables"] == {"n": 8}


async def test_a_report_that_changes_nothing_is_not_written(
    fleet: tuple[RunningManager, list[SimNode]],
) -> None:
    manager, nodes = fleet
    store = manager.state.store
    node, project = placed(manager, nodes)[0]
    record = manager.state.cluster.projects[project]
    await node.report(project, "running", {"n": 1})
    first = record.updated_at
    commits = store.commits

    answer = await node.report(project, "running", {"n": 1})

    assert answer["update-result"] == "success"
    assert store.commits == commits  # nothing to write
    # The time of its last report is still kept (in memory).
    assert first is not None and record.updated_at is not None and record.updated_at >= first
    await node.report(project, "running", {"n": 2})
    assert store.commits == commits + 1
    assert manager.db_rows("projects")[project]["variables"] == {"n": 2}


async def test_the_wal_is_checkpointed_off_the_event_loop(
    fleet: tuple[RunningManager, list[SimNode]],
) -> None:
    manager, nodes = fleet
    store = manager.state.store
    assert isinstance(store, Store)
    # The manager's own connection never checkpoints inside a COMMIT (on the loop's thread).
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    done = store.checkpointer.checkpoints
    node, project = placed(manager, nodes)[0]
    await node.report(project, "running", {"n": 5})

    async def checkpointed() -> bool:
        return store.checkpointer.checkpoints > done

    await wait_for(checkpointed, timeout=10, what="a checkpoint after the report")
