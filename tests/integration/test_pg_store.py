"""The PostgreSQL store on its own (DESIGN §13): migrations run once however many managers start
together, a database from a newer Syncopate is refused, the commands run beside a manager find
its database through store.json, and a leader whose database session is cut (the server
restarted) stops writing and exits, to be started again with nothing acknowledged lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from syncopate.client import ManagerClient
from syncopate.errors import StoreFailed, Unavailable
from syncopate.manager import secret_box
from syncopate.manager.pg_store import STEPS, PgStore
from syncopate.manager.shared_serve import LOST_LEAD_EXIT
from syncopate.manager.sql_store import STORE_FILE, open_store
from tests.helpers import PASSWORD, RunningManager, SimNode, running_manager, wait_for
from tests.pg import PgServer, running_server
from tests.procs import manager_process

pytestmark = pytest.mark.slow
CLI = (sys.executable, "-m", "syncopate")


@pytest.fixture
def database(pg_server: PgServer) -> str:
    return pg_server.database()


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A server of this test's own: it is restarted under a manager."""
    with running_server() as server:
        yield server


def test_managers_starting_together_migrate_one_schema(database: str, tmp_path: Path) -> None:
    # Their data dirs are copies: one secrets key (made here, before they start).
    secret_box.load_or_create(tmp_path / "manager", None)
    stores: list[PgStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            stores.append(PgStore(database, tmp_path / "manager"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Unlocked, CREATE TABLE IF NOT EXISTS in four sessions at once fails in all but one
    # ("duplicate key value violates unique constraint"): the schema lock serialises them.
    assert not errors, errors
    assert len(stores) == 4
    for store in stores:
        assert store.get_meta("schema-version") == str(STEPS[-1].version)
    stores[0].set_meta("shared", "yes")
    assert all(store.get_meta("shared") == "yes" for store in stores)
    for store in stores:
        store.close()


def test_a_database_from_a_newer_syncopate_is_refused(database: str, tmp_path: Path) -> None:
    store = PgStore(database, tmp_path / "manager")
    store.set_meta("schema-version", str(STEPS[-1].version + 1))
    store.close()
    with pytest.raises(RuntimeError, match="newer Syncopate"):
        PgStore(database, tmp_path / "manager")


def test_a_store_that_is_not_postgresql_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        open_store(tmp_path, "mysql://user:secret@db/fleet")
    try:
        open_store(tmp_path, "mysql://user:secret@db/fleet")
    except ValueError as exc:
        assert "secret" not in str(exc)  # the password is not repeated


async def test_a_leader_cut_from_its_database_exits_and_starts_again_whole(
    own_server: PgServer, tmp_path: Path
) -> None:
    database = own_server.database()
    args = ["--store", database]
    with manager_process(tmp_path / "m", password=PASSWORD, extra_args=args) as manager:
        url = await asyncio.to_thread(manager.start)
        async with ManagerClient(url, manager.token) as ctl:
            await ctl.add("kept", "file:///srv/kept.git", {"n": 7}, start=False)
        await asyncio.to_thread(own_server.restart)
        proc = manager.proc
        assert proc is not None
        await asyncio.to_thread(proc.wait, 30)  # it exits by itself
        output = manager.output
        code = manager.stop()  # reaps it, and ends its output
        assert code == LOST_LEAD_EXIT, output
        assert "lost the database session that held the leadership" in output
        # Started again without --store: the data dir's store.json names the database.
        assert (tmp_path / "m" / STORE_FILE).exists()
        manager.extra_args = []
        url = await asyncio.to_thread(manager.start)
        async with ManagerClient(url, manager.token) as ctl:
            kept = (await ctl.status(["kept"]))["kept"]
        assert kept["persistent-variables"] == {"n": 7}

        # The commands run beside it use the same database.
        tokens = subprocess.run(
            [*CLI, "manager", "tokens", "--json", "--data-dir", str(tmp_path / "m")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert tokens.returncode == 0, tokens.stderr
        assert '"main": true' in tokens.stdout

        async def health() -> bool:
            async with ManagerClient(url) as client:
                return bool((await client.health())["role"] == "leader")

        await wait_for(health, timeout=10, what="the manager to lead again")


async def test_a_batch_whose_session_is_killed_is_refused_whole_and_the_next_commits(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """The database ends the manager's session while a batch of reports is open (as an
    administrator's pg_terminate_backend, a failover of the database, would): every report in
    it is refused (503) and put back, nothing else changes, and the next report, on a new
    session, is taken."""
    url = pg_server.database()
    async with running_manager(
        tmp_path / "manager", node_timeout=60.0, store_url=url, group_commit_window=0.5
    ) as manager:
        node = await SimNode.join(manager.url, "pi-1")
        async with manager.client() as ctl:
            await ctl.add("counter", "file:///srv/counter.git", {"count": 1})
        await node.poll()
        assert (await node.report("counter", "running", {"count": 2}))["code"] == 0
        store = manager.state.store
        assert isinstance(store, PgStore)
        report = asyncio.create_task(node.report("counter", "running", {"count": 3}))

        async def batch_open() -> bool:
            return store._batch_open

        await wait_for(batch_open, timeout=5, what="the report's batch to open")
        with psycopg.connect(url, autocommit=True) as admin:
            pid = store._pg.connection.info.backend_pid
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(Unavailable):
            await report
        await _put_back_then_taken(manager, node)
        await node.close()


def test_a_batch_goes_to_the_server_whole_at_its_commit(database: str, tmp_path: Path) -> None:
    """A batch's statements are kept until `flush()` and sent together (pipeline mode): another
    session sees none of them before, all after; a join that fails takes only its own out; a
    read in a batched write is refused (it could not see the batch); a statement the server
    refuses fails the batch whole, and the store goes on."""
    store = PgStore(database, tmp_path / "manager")
    ended: list[StoreFailed | None] = []
    store.batch_ended = ended.append

    def seen() -> dict[str, str]:
        with psycopg.connect(database, autocommit=True) as other:
            rows = other.execute("SELECT key, value FROM meta WHERE length(key) = 1").fetchall()
        return dict(rows)

    try:
        with store.batch():
            store.set_meta("a", "1")
        with pytest.raises(ZeroDivisionError), store.batch():
            store.set_meta("b", "2")
            raise ZeroDivisionError
        with store.batch():
            store.set_meta("c", "3")
        assert seen() == {} and ended == []
        store.flush()
        assert seen() == {"a": "1", "c": "3"} and ended == [None]

        with pytest.raises(RuntimeError, match="may only write, not read"), store.batch():
            store.get_meta("a")
        store.flush()
        assert ended == [None, None]

        with store.batch():
            store.set_meta("d", "4")
            store._db.execute("INSERT INTO meta(key, value) VALUES(?, NULL)", ("e",))
        store.flush()
        assert isinstance(ended[-1], StoreFailed) and "null value" in str(ended[-1])
        assert seen() == {"a": "1", "c": "3"}
        store.set_meta("f", "6")
        assert seen() == {"a": "1", "c": "3", "f": "6"}
        assert store.waited > 0
    finally:
        store.close()


async def test_a_batch_sent_on_the_stores_thread_is_told_on_the_loop_in_order(
    database: str, tmp_path: Path
) -> None:
    """`send_batch()` commits a batch while the loop goes on, and `batch_ended` hears of it on
    the loop; a `flush()` meanwhile waits for it and tells it first; a batch the server refuses
    on that thread leaves no transaction open behind it."""
    store = PgStore(database, tmp_path / "manager")
    ended: list[tuple[str, StoreFailed | None]] = []
    loop_thread = threading.get_ident()

    def told(error: StoreFailed | None) -> None:
        assert threading.get_ident() == loop_thread, "batch_ended off the event loop"
        ended.append((str(len(ended)), error))

    store.batch_ended = told
    try:
        with store.batch():
            store.set_meta("a", "1")
        store.send_batch()

        async def landed() -> bool:
            return len(ended) == 1

        await wait_for(landed, timeout=10, what="the batch sent on the store's thread to land")
        assert ended == [("0", None)] and store.get_meta("a") == "1"

        with store.batch():
            store.set_meta("b", "2")
        store.send_batch()
        with store.batch():
            store.set_meta("c", "3")
        store.flush()  # waits for b's batch, tells it, then commits c's
        assert ended[1:] == [("1", None), ("2", None)]
        assert (store.get_meta("b"), store.get_meta("c")) == ("2", "3")

        with store.batch():
            store._db.execute("INSERT INTO meta(key, value) VALUES(?, NULL)", ("d",))
        store.send_batch()

        async def refused() -> bool:
            return len(ended) == 4

        await wait_for(refused, timeout=10, what="the refused batch to be told")
        assert isinstance(ended[3][1], StoreFailed)
        assert not store._pg.in_transaction()
        store.set_meta("e", "5")
        assert store.get_meta("e") == "5" and store.get_meta("d") is None
    finally:
        store.close()


async def test_a_managers_reports_are_committed_off_the_event_loop(
    database: str, tmp_path: Path
) -> None:
    """In a manager on PostgreSQL, node reports go through `send_batch` (the store's thread),
    are answered once committed, and a controller's write after them sees them stored."""
    async with running_manager(tmp_path / "manager", node_timeout=60.0, store_url=database) as (
        manager
    ):
        store = manager.state.store
        assert isinstance(store, PgStore)
        node = await SimNode.join(manager.url, "pi-1")
        async with manager.client() as ctl:
            await ctl.add("counter", "file:///srv/counter.git", {"count": 0})
        await node.poll()
        sent = store.sent
        answers = await asyncio.gather(
            *(node.report("counter", "running", {"count": n}) for n in range(1, 6))
        )
        assert [a["code"] for a in answers] == [0] * 5
        assert store.sent > sent
        assert manager.db_rows("projects")["counter"]["variables"]["count"] in range(1, 6)
        async with manager.client() as ctl:
            await ctl.stop(["counter"])
        stored = manager.db_rows("projects")["counter"]
        assert stored["desired"] == "stopped" and stored["variables"]["count"] in range(1, 6)
        await node.close()


async def test_the_loop_answers_while_a_batch_waits_and_a_link_cut_mid_batch_refuses_it(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """A batch of reports held on the server (another session holds its row's lock, as a slow
    or stalled database would hold it) does not hold the manager: another node's poll is
    answered meanwhile. (A controller's request would wait: its token is read from the
    database.) The session is then ended under the batch, in the middle of its transaction:
    the report is refused (503) and put back, and the next one, on a new session, is taken."""
    url = pg_server.database()
    async with running_manager(tmp_path / "manager", node_timeout=60.0, store_url=url) as manager:
        store = manager.state.store
        assert isinstance(store, PgStore)
        node = await SimNode.join(manager.url, "pi-1")
        async with manager.client() as ctl:
            await ctl.add("counter", "file:///srv/counter.git", {"count": 1})
        await node.poll()
        other_node = await SimNode.join(manager.url, "pi-2")
        assert (await node.report("counter", "running", {"count": 2}))["code"] == 0
        pid = store._pg.connection.info.backend_pid
        with (
            psycopg.connect(url, autocommit=True) as holder,
            psycopg.connect(url, autocommit=True) as admin,
        ):
            holder.execute("BEGIN")
            holder.execute("SELECT 1 FROM projects WHERE name = 'counter' FOR UPDATE")
            # Should the loop wait with the batch after all, this lets it go after 20 s, so
            # the test fails on its deadline rather than hangs.
            watchdog = threading.Timer(20, lambda: holder.execute("ROLLBACK"))
            watchdog.start()
            try:
                report = asyncio.create_task(node.report("counter", "running", {"count": 3}))

                async def held() -> bool:
                    row = admin.execute(
                        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
                    ).fetchone()
                    return row is not None and row[0] == "Lock"

                await wait_for(held, timeout=10, what="the report's batch to wait on the lock")
                await other_node.poll()
                assert watchdog.is_alive(), "the poll waited for the stalled batch"
                assert not report.done()
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                with pytest.raises(Unavailable):
                    await report
            finally:
                watchdog.cancel()
            with contextlib.suppress(psycopg.Error):
                holder.execute("ROLLBACK")
        await _put_back_then_taken(manager, node)
        await node.close()
        await other_node.close()


async def _put_back_then_taken(manager: RunningManager, node: SimNode) -> None:
    """After a refused report of count 3 (count 2 committed before it): it was put back in
    memory and is not stored, and the next report, on a new session, is taken."""
    async with manager.client() as ctl:
        kept = (await ctl.status(["counter"]))["counter"]["persistent-variables"]
    assert kept == {"count": 2}  # the refused report was put back
    assert manager.db_rows("projects")["counter"]["variables"] == {"count": 2}
    assert (await node.report("counter", "running", {"count": 4}))["code"] == 0
    assert manager.db_rows("projects")["counter"]["variables"] == {"count": 4}
