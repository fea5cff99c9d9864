"""A refused write changes nothing (DESIGN §14; issue 12, item 3).

When the database cannot write (a full disk), every route answers 503 naming the cause, the
manager's memory stays exactly as it was before the request (no event, no wake of a node's long
poll), the monitor keeps ticking, and once writes work again nothing refused surfaces: the bug
was that a refused change stayed in memory and the next successful write persisted it.

Two ways to fill the disk: a real one (a small tmpfs as the data dir, filled until ENOSPC; needs
root) and a fault injected under the store (its COMMIT fails as SQLite's does on a full disk),
which runs everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from syncopate.client import ManagerClient
from syncopate.errors import Unavailable
from syncopate.manager import sql_store
from syncopate.manager.cluster import Cluster
from syncopate.manager.command_rows import dump_record
from syncopate.manager.store import Store
from syncopate.states import NodeStatus
from tests.faults import fill_up, small_tmpfs
from tests.helpers import PASSWORD, RunningManager, SimNode, running_manager, wait_for

FULL = "database or disk is full"
REFUSED = f"database write failed: {FULL}"
# A node's last contact: any authenticated request is contact, whatever becomes of it; it is
# written with the node's next change, not on its own.
CONTACT = ("last_contact", "last_contact_wall", "address")
ALPHA_URL = "https://example.com/alpha.git"
BETA_URL = "https://example.com/beta.git"


class FullDisk:
    """The store's connection with a switch: while `full`, COMMIT fails as on a full disk.

    SQLite reports a full disk at COMMIT (the pages are written then), after the statements
    went through; the transaction is still open then, so the store must roll it back.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.full = False
        self.refused = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.full and sql == "COMMIT":
            self.refused += 1
            raise sqlite3.OperationalError(FULL)
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def inject(manager: RunningManager) -> FullDisk:
    store = manager.state.store
    assert isinstance(store, Store)
    disk = FullDisk(store._sqlite)
    store._db = disk
    return disk


# the state refused writes must not change ---------------------------------------------------
@dataclass
class Known:
    manager: RunningManager
    pi1: SimNode
    pi2: SimNode
    pi3: SimNode  # left: dead, may be forgotten
    requested: int  # a command for pi-2, not collected yet
    collected: int  # a command pi-1 collected
    events: list[tuple[str, ...]] = field(default_factory=list)


async def agent(url: str, name: str) -> SimNode:
    """A node that says it runs the agent: the manager hands commands out to agents only."""
    client = ManagerClient(url)
    got_name, token = await client.initialize(PASSWORD, name, 10_000, 4_000, agent_version="t")
    return SimNode(client, got_name, token)


@contextlib.asynccontextmanager
async def known_state(manager: RunningManager) -> AsyncIterator[Known]:
    pi1 = await agent(manager.url, "pi-1")
    pi3 = await SimNode.join(manager.url, "pi-3")
    await pi3.client.node_leave(pi3.name, pi3.token)
    pi2: SimNode | None = None
    try:
        async with manager.client() as ctl:
            # pi-2 joins after: pi-1 is the only node alpha can be placed on.
            added = await ctl.add("alpha", ALPHA_URL, {"count": 0})
            assert added["projects"]["alpha"]["node"] == "pi-1"
            await ctl.add("beta", BETA_URL, {"n": 1}, start=False)
            pi2 = await agent(manager.url, "pi-2")
            (collected,) = await ctl.command_send(["pi-1"], "print('one')")
            await pi1.poll()  # collects it
            (requested,) = await ctl.command_send(["pi-2"], "print('two')")
        await pi1.report(
            "alpha",
            "running",
            {"count": 3},
            **cast(
                dict[str, Any], {"log-stream": "s", "log-seq": 0, "log-lines": ["alpha says hi"]}
            ),
        )
        known = Known(manager, pi1, pi2, pi3, int(requested), int(collected))
        state = manager.state
        # Every event and wake the manager emits from here on.
        state.cluster.notify = lambda kind, name: known.events.append(("notify", kind, name))
        state.cluster.notify_lines = lambda p, *_: known.events.append(("lines", p))
        state.commands.notify = lambda kind, name: known.events.append(("notify", kind, name))
        yield known
    finally:
        for node in (pi1, pi2, pi3):
            if node is not None:
                await node.close()


def fields_of(record: Any, *leave_out: str) -> dict[str, Any]:
    # Copies of the containers: a later change in place must show as a difference.
    return {
        f.name: copy.deepcopy(getattr(record, f.name))
        for f in dataclasses.fields(record)
        if f.name not in leave_out
    }


def memory(manager: RunningManager) -> dict[str, Any]:
    """The manager's memory: every record's fields and the indexes derived from them."""
    cluster: Cluster = manager.state.cluster
    book = manager.state.commands
    return {
        "projects": {n: fields_of(p) for n, p in cluster.projects.items()},
        "nodes": {n: fields_of(x, *CONTACT) for n, x in cluster.nodes.items()},
        "on-node": {n: sorted(s) for n, s in cluster.state.on_node.items()},
        "incoming": {n: sorted(s) for n, s in cluster.state.incoming.items() if s},
        "versions": dict(cluster.polls.versions),
        "sent-versions": dict(cluster.polls.sent_versions),
        "waiting": {i: fields_of(c) for i, c in book.waiting.items()},
        "queued": {n: list(ids) for n, ids in book._queued.items()},
        "last-id": book._last_id,
    }


def stored(manager: RunningManager) -> dict[str, Any]:
    """The database as another process reads it."""
    return {
        "projects": manager.db_rows("projects"),
        "nodes": manager.db_rows("nodes"),
        "commands": manager.db_query("SELECT id, node, state, data FROM commands"),
        "log-lines": manager.db_query("SELECT * FROM log_lines ORDER BY project, seq"),
    }


async def observe(manager: RunningManager) -> dict[str, Any]:
    """What the manager answers, holds and stored (last-contact aside: contact is not stored)."""
    async with manager.client() as ctl:
        answers = {
            "status": await ctl.status(),
            "nodes": await ctl.nodes(),
            "commands": await ctl.command_list(),
        }
    for node in answers["nodes"].values():
        node.pop("last-contact")
    return {"answers": answers, "memory": memory(manager), "stored": stored(manager)}


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    """Where two observations differ, by path."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in before.keys() | after.keys():
            found += differences(before.get(key), after.get(key), f"{path}/{key}")
        return found
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


def assert_memory_is_stored(manager: RunningManager) -> None:
    """Every record in memory is the row in the database, and no row is missing from memory.

    A node's `last_contact_wall` is left out (see CONTACT).
    """
    cluster = manager.state.cluster
    rows = stored(manager)
    projects = {
        n: {
            **json.loads(dump_record(p, sql_store._PROJECT_TRANSIENT)),
            "secrets": p.secrets,
        }
        for n, p in cluster.projects.items()
    }
    # Secrets (and a password-bearing URL) are stored sealed: compare what they open to.
    box = manager.state.store.secrets
    for row in rows["projects"].values():
        row["secrets"] = box.open(row.get("secrets", ""))
        if "url-sealed" in row:
            row["url"] = box.open_text(row.pop("url-sealed"))
    nodes = {
        n: json.loads(dump_record(x, sql_store._NODE_TRANSIENT)) for n, x in cluster.nodes.items()
    }
    for node in (*nodes.values(), *rows["nodes"].values()):
        del node["last_contact_wall"]
    assert projects == rows["projects"]
    assert nodes == rows["nodes"]


Call = Callable[[Known], Awaitable[Any]]


def ctl(action: str, **fields: Any) -> Call:
    async def call(k: Known) -> Any:
        async with k.manager.client() as client:
            return await client.controller(action, **fields)

    return call


def project(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "initial_variables": {}, **extra}


async def report_alpha(k: Known) -> Any:
    return await k.pi1.report(
        "alpha",
        "stopped",
        {"count": 99},
        **cast(
            dict[str, Any],
            {"log-stream": "s", "log-seq": 1, "log-lines": ["refused line"], "exit-code": 1},
        ),
    )


async def join_pi9(k: Known) -> Any:
    return await k.pi1.client.initialize(PASSWORD, "pi-9", storage=10_000, ram=4_000)


async def poll_pi2(k: Known) -> Any:
    # Hands out the requested command: it must stay requested.
    return await k.pi2.poll()


async def poll_pi3(k: Known) -> Any:
    # A departed node that speaks again is alive: a write.
    return await k.pi3.poll()


async def leave_pi2(k: Known) -> Any:
    return await k.pi2.client.node_leave(k.pi2.name, k.pi2.token)


async def respond(k: Known) -> Any:
    return await k.pi1.client.node_command_result(
        k.pi1.name, k.pi1.token, k.collected, "one\n", 0, 0.1
    )


REFUSED_CALLS: dict[str, Call] = {
    "add": ctl("add", project=project("gamma", "https://example.com/gamma.git")),
    "add-stopped": ctl("add", project=project("delta", "https://e.com/d.git", start=False)),
    "stop": ctl("stop", projects=["alpha"]),
    "stop-all": ctl("stop", projects=[]),
    "start": ctl("start", projects=["beta"]),
    "restart": ctl("restart", projects=["alpha"]),
    "reset": ctl("reset", projects=["alpha", "beta"]),
    "remove": ctl("remove", project={"name": "alpha", "url": ALPHA_URL}),
    "set": ctl("set", project={"name": "alpha", "command": "run", "env": {"A": "1"}}),
    "set-ram-move": ctl("set", project={"name": "alpha", "ram": 1e9}),
    "set-secret": ctl("set", project={"name": "alpha", "secrets": {"S": "x"}}),
    "set-password-url": ctl("set", project={"name": "alpha", "url": "https://u:pw@e.com/a.git"}),
    "add-secret": ctl(
        "add", project=project("gamma", "https://u:pw@e.com/g.git", secrets={"S": "x"})
    ),
    "set-variables": ctl("set-variables", projects=["alpha", "beta"], variables={"a": 1}),
    "node-drain": ctl("node-drain", node="pi-1"),
    "node-label": ctl("node-label", node="pi-1", labels={"zone": "lab"}),
    "node-forget": ctl("node-forget", node="pi-3"),
    "command-send": ctl("command-send", nodes=["pi-1", "pi-2"], code="print(3)"),
    "command-cancel": lambda k: ctl("command-cancel", id=k.requested)(k),
    "node-update": report_alpha,
    "node-initialize": join_pi9,
    "node-status (collect)": poll_pi2,
    "node-status (revive)": poll_pi3,
    "node-leave": leave_pi2,
    "node-command-result": respond,
}


async def assert_refusals_change_nothing(
    k: Known, fill: Callable[[], None], free: Callable[[], None]
) -> None:
    manager = k.manager
    before = await observe(manager)
    assert_memory_is_stored(manager)
    assert before["memory"]["nodes"]["pi-3"]  # the forget case has its dead node
    k.events.clear()
    fill()
    try:
        for what, call in REFUSED_CALLS.items():
            try:
                answer = await call(k)
            except Unavailable as refused:
                assert str(refused) == REFUSED, what
            else:
                raise AssertionError(f"{what} was not refused: {answer}")
            after = await observe(manager)
            assert after == before, (
                f"a refused {what} changed the manager: {differences(before, after)}"
            )
            assert k.events == [], f"a refused {what} was announced: {k.events}"
        # Reads keep working while writes fail.
        async with manager.client() as client:
            assert (await client.health())["status"] == "ok"
            assert (await client.logs("alpha"))["lines"] == ["alpha says hi"]
    finally:
        free()

    # A write that succeeds now does not carry anything that was refused.
    answer = await k.pi1.report("alpha", "running", {"count": 4})
    assert answer["update-result"] == "success"
    assert_memory_is_stored(manager)
    alpha = manager.db_rows("projects")["alpha"]
    was = before["stored"]["projects"]["alpha"]
    assert (alpha["desired"], alpha["epoch"], alpha["restart"], alpha["node"]) == (
        was["desired"],
        was["epoch"],
        was["restart"],
        was["node"],
    )
    assert set(manager.db_rows("projects")) == {"alpha", "beta"}
    assert set(manager.db_rows("nodes")) == {"pi-1", "pi-2", "pi-3"}

    # And every route works again.
    async with manager.client() as client:
        assert (await client.add("gamma", "https://example.com/gamma.git"))["projects"]
        assert (await client.stop(["alpha"]))["projects"]["alpha"]["desired"] == "stopped"
        assert (await client.reset(["beta"]))["projects"]["beta"]["epoch"] == 1
        await client.drain("pi-2")
        await client.forget("pi-3")
        await client.command_cancel(k.requested)
        (sent,) = await client.command_send(["pi-2"], "print(4)")
    # Handed out once.
    answer = await k.pi2.client.node_status(k.pi2.name, k.pi2.token)
    assert [c["id"] for c in answer["commands"]] == [int(sent)]
    assert (await k.pi2.client.node_status(k.pi2.name, k.pi2.token))["commands"] == []
    await respond(k)
    await k.pi1.report("alpha", "stopped")
    pi9 = await SimNode.join(manager.url, "pi-9")
    await pi9.close()
    assert_memory_is_stored(manager)


# the injected fault: runs everywhere ---------------------------------------------------------
@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[RunningManager]:
    # A long node-timeout: the monitor must not move anything while these tests look.
    async with running_manager(tmp_path / "manager", node_timeout=60.0) as running:
        yield running


async def test_refused_writes_change_nothing(manager: RunningManager) -> None:
    disk = inject(manager)
    async with known_state(manager) as k:

        def fill() -> None:
            disk.full = True

        def free() -> None:
            disk.full = False

        await assert_refusals_change_nothing(k, fill, free)
    assert disk.refused >= len(REFUSED_CALLS)


async def test_a_statement_that_fails_is_refused_the_same_way(manager: RunningManager) -> None:
    """A write can fail before COMMIT too (an INSERT that needs a new page): same answer."""
    store = manager.state.store

    class FailingInsert(FullDisk):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if self.full and sql.startswith(("INSERT", "DELETE")):
                raise sqlite3.OperationalError(FULL)
            return super().execute(sql, *args)

    assert isinstance(store, Store)
    disk = FailingInsert(store._sqlite)
    store._db = disk
    async with known_state(manager) as k:
        before = await observe(manager)
        disk.full = True
        for what in ("add", "stop", "reset", "node-update", "command-send", "node-leave"):
            with pytest.raises(Unavailable, match=FULL):
                await REFUSED_CALLS[what](k)
            assert await observe(manager) == before, what
        disk.full = False
        assert_memory_is_stored(manager)


async def test_the_monitor_keeps_ticking_and_converges_after_the_disk_frees(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A node that dies while nothing can be written is failed over once writes work again."""
    caplog.set_level(logging.WARNING, logger="syncopate")
    async with running_manager(tmp_path / "manager", node_timeout=0.5) as manager:
        disk = inject(manager)
        cluster = manager.state.cluster
        pi1 = await SimNode.join(manager.url, "pi-1")
        pi2 = await SimNode.join(manager.url, "pi-2")
        stop = asyncio.Event()

        async def keep_alive(node: SimNode) -> None:
            while not stop.is_set():
                await node.poll()
                await asyncio.sleep(0.05)

        keeper = asyncio.create_task(keep_alive(pi2))
        try:
            async with manager.client() as ctl:
                added = await ctl.add("alpha", ALPHA_URL, {"count": 0})
                owner = added["projects"]["alpha"]["node"]
            if owner == pi2.name:  # keep the owner silent, the other one alive
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
                keeper = asyncio.create_task(keep_alive(pi1))
            epoch = cluster.projects["alpha"].epoch

            disk.full = True
            refused = disk.refused

            async def ticks_refused() -> bool:
                # Several ticks tried to declare the owner dead, and the monitor lives on.
                return disk.refused >= refused + 3

            await wait_for(ticks_refused, timeout=5, what="the monitor to try the failover")
            # Memory claims nothing the database does not have.
            assert cluster.nodes[owner].status is NodeStatus.ALIVE
            assert cluster.projects["alpha"].node == owner
            assert cluster.projects["alpha"].epoch == epoch
            assert_memory_is_stored(manager)

            disk.full = False

            async def failed_over() -> bool:
                alpha = manager.db_rows("projects")["alpha"]
                return alpha["node"] not in (owner, None)

            await wait_for(failed_over, timeout=5, what="alpha to fail over")
            assert cluster.nodes[owner].status is NodeStatus.DEAD
            assert cluster.projects["alpha"].epoch == epoch + 1
            # Said once, when the write stood: not on each refused tick before it.
            dead = [r.getMessage() for r in caplog.records if " is dead: " in r.getMessage()]
            assert len(dead) == 1 and dead[0].startswith(f"node {owner} is dead"), dead
            assert_memory_is_stored(manager)
        finally:
            stop.set()
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await pi1.close()
            await pi2.close()
    messages = [r.getMessage() for r in caplog.records]
    assert not any("monitor tick failed" in m for m in messages), messages
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"
    assert any(REFUSED in m for m in messages), "the refused writes were not logged"


# a real full disk: a tmpfs (needs root) ------------------------------------------------------
async def test_a_full_disk_changes_nothing(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        async with running_manager(disk / "manager", node_timeout=60.0) as manager:
            Store(disk / "manager").close()  # the schema is there before the disk fills
            filler = disk / "filler"
            async with known_state(manager) as k:
                await assert_refusals_change_nothing(
                    k, lambda: fill_up(filler), lambda: filler.unlink()
                )
