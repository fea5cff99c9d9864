"""The manager as a real process: what it acknowledged survives kill -9, and its secrets on disk.

DESIGN §6: restarting the manager loses nothing that it acknowledged; the database keeps only
hashes of tokens; controller.json and the password file are private. DESIGN §4: after a restart
every known node gets a full node-timeout before it can be declared dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from syncopate.client import ManagerClient
from syncopate.errors import ConnectionFailed, Forbidden, Unauthorized
from syncopate.manager.sql_store import remembered_store
from tests.helpers import PASSWORD, SimNode, wait_for
from tests.procs import ManagerProcess, manager_process

pytestmark = pytest.mark.slow

# Node fields that a restart must keep (last-contact and address are not stored, by design).
KEPT_NODE_FIELDS = (
    "name",
    "status",
    "drained",
    "left",
    "joined-at",
    "storage",
    "ram",
    "labels",
    "agent-version",
    "projects",
)


@pytest.fixture
def manager(tmp_path: Path, store_url: str | None) -> Iterator[ManagerProcess]:
    """A manager process (not started) on tmp_path/manager with the test password, on each
    store (`--store` for PostgreSQL)."""
    extra = ["--store", store_url] if store_url else []
    with manager_process(
        tmp_path / "manager", password=PASSWORD, node_timeout=30, extra_args=extra
    ) as running:
        yield running


async def start(manager: ManagerProcess) -> str:
    return await asyncio.to_thread(manager.start)


def reconnect(node: SimNode, url: str) -> SimNode:
    """The same node identity (name and token) talking to a restarted manager."""
    return SimNode(ManagerClient(url), node.name, node.token)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def database_bytes(data_dir: Path) -> bytes:
    """syncopate.db and, when there is one, its write-ahead log, raw; for a manager on
    PostgreSQL (its store.json), every row of every table of its database, as text."""
    kept = remembered_store(data_dir)
    if kept is not None:
        import psycopg

        with psycopg.connect(kept) as pg:
            tables = pg.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchall()
            rows = [
                str(value)
                for (table,) in tables
                for row in pg.execute(f"SELECT * FROM {table}")
                for value in row
            ]
        return "\n".join(rows).encode()
    raw = (data_dir / "syncopate.db").read_bytes()
    wal = data_dir / "syncopate.db-wal"
    if wal.exists():
        raw += wal.read_bytes()
    return raw


def assert_no_plain_secrets(data_dir: Path, secrets: dict[str, str], stored: str) -> None:
    """None of `secrets` is in the database files, which do hold `stored` (a non-secret)."""
    raw = database_bytes(data_dir)
    assert stored.encode() in raw, f"{stored!r} is not in the database files: wrong files?"
    for what, secret in secrets.items():
        assert secret.encode() not in raw, f"the {what} is stored in plain text in the database"


async def join(url: str, name: str, password: str = PASSWORD, **options: Any) -> tuple[str, str]:
    async with ManagerClient(url) as client:
        return await client.initialize(password, name, storage=10_000, ram=4_000, **options)


# acknowledged changes survive kill -9 -----------------------------------------------------------
async def test_acknowledged_changes_survive_kill_9(manager: ManagerProcess) -> None:
    url = await start(manager)
    controller_token = manager.token
    nodes: list[SimNode] = []
    try:
        a = await SimNode.join(url, "pi-a")
        b = await SimNode.join(url, "pi-b")
        nodes += [a, b]
        by_name = {a.name: a, b.name: b}
        assert set(by_name) == {"pi-a", "pi-b"}

        initial: dict[str, dict[str, Any]] = {
            "counter": {"count": 0},
            "weather": {"city": "Oslo", "samples": [1, 2, 3]},
            "printer": {"jobs": 0},
            "archive": {"kept": True},
            "blinker": {"on": False},
            "logger": {"lines": 0, "nested": {"level": "info"}},
        }
        async with ManagerClient(url, controller_token) as ctl:
            placed: dict[str, str | None] = {}
            for name, variables in initial.items():
                options: dict[str, Any] = {}
                if name == "printer":
                    options["exclusive"] = True
                if name == "archive":
                    options["start"] = False
                added = await ctl.add(name, f"file:///srv/{name}.git", variables, **options)
                assert added["request-status"] == "success"
                placed[name] = added["projects"][name]["node"]
            assert placed["archive"] is None
            started = [n for n in initial if n != "archive"]
            assert all(placed[n] in by_name for n in started), placed
            assert {placed[n] for n in started} == {"pi-a", "pi-b"}, "both nodes should get work"

            # The owners report variables (with the epoch they were given).
            reported: dict[str, dict[str, Any]] = {
                "counter": {"count": 41},
                "weather": {"city": "Oslo", "samples": [1, 2, 3, 4]},
                "printer": {"jobs": 7},
                "blinker": {"on": True},
                "logger": {"lines": 1000, "nested": {"level": "debug"}},
            }
            for node in nodes:
                await node.poll()
            for name, variables in reported.items():
                owner = by_name[str(placed[name])]
                answer = await owner.report(name, "running", variables)
                assert answer["update-result"] == "success"

            # Reset one, stop one, restart one.
            epoch_before_reset = (await ctl.status(["weather"]))["weather"]["epoch"]
            reset = await ctl.reset(["weather"])
            assert reset["projects"]["weather"]["persistent-variables"] == initial["weather"]
            assert reset["projects"]["weather"]["epoch"] == epoch_before_reset + 1
            weather_epoch = epoch_before_reset + 1
            stopped = await ctl.stop(["blinker"])
            assert stopped["projects"]["blinker"]["desired"] == "stopped"
            restarted = await ctl.restart(["logger"])
            assert restarted["projects"]["logger"]["restart"] == 1

            # Drain the node that runs `counter`: its projects move once it reports them
            # stopped, with their final variables.
            drained = by_name[str(placed["counter"])]
            other = b if drained is a else a
            on_drained = {n for n in started if placed[n] == drained.name}
            answer = await ctl.drain(drained.name)
            assert answer["request-status"] == "success"
            seen = await drained.poll()
            finals: dict[str, dict[str, Any]] = {}
            for name, assignment in seen.items():
                if assignment["desired"] == "stopped":
                    final = {**assignment["persistent-variables"], "final": True}
                    finals[name] = final
                    await drained.report(name, "stopped", final)
            assert "counter" in finals
            status = await ctl.status()
            for name in on_drained:
                assert status[name]["node"] == other.name, status[name]
            for name, final in finals.items():
                assert status[name]["persistent-variables"] == final
            assert not (await ctl.nodes())[drained.name]["projects"]
            if "weather" in on_drained:
                weather_epoch += 1  # the move assigned it again

            # The new owner starts `counter` under its new epoch and reports again.
            await other.poll()
            await other.report("counter", "running", {"count": 43})
            counter_epoch = other.seen["counter"]["epoch"]

            status_before = await ctl.status()
            nodes_before = await ctl.nodes()

        assert status_before["counter"]["persistent-variables"] == {"count": 43}
        manager.kill()
        # Nothing the killed process held only in memory can be in the files now.
        assert_no_plain_secrets(
            manager.data_dir,
            {"controller token": controller_token, "pi-a token": a.token, "pi-b token": b.token},
            stored='"count":43',
        )

        url = await start(manager)
        assert manager.token == controller_token, "controller.json got a new token"
        assert manager.controller_json()["url"] == url
        async with ManagerClient(url, controller_token) as ctl:
            status_after = await ctl.status()
            nodes_after = await ctl.nodes()

            assert status_after == status_before
            counter = status_after["counter"]
            assert counter["node"] == other.name
            assert counter["epoch"] == counter_epoch
            assert counter["persistent-variables"] == {"count": 43}
            assert counter["status"] == "running"
            weather = status_after["weather"]
            assert weather["persistent-variables"] == initial["weather"]
            assert weather["epoch"] == weather_epoch
            assert status_after["blinker"]["desired"] == "stopped"
            assert status_after["logger"]["restart"] == 1
            assert status_after["printer"]["exclusive"] is True
            archive = status_after["archive"]
            assert (archive["node"], archive["desired"]) == (None, "stopped")
            assert archive["persistent-variables"] == initial["archive"]
            for name, variables in reported.items():
                if name in on_drained:
                    assert status_after[name]["node"] == other.name
                    if name != "counter" and name in finals:
                        assert status_after[name]["persistent-variables"] == finals[name]
                elif name != "weather":
                    assert status_after[name]["persistent-variables"] == variables, name
                    assert status_after[name]["node"] == placed[name]

            assert set(nodes_after) == {"pi-a", "pi-b"}
            for name, before in nodes_before.items():
                kept = {k: before[k] for k in KEPT_NODE_FIELDS}
                assert {k: nodes_after[name][k] for k in KEPT_NODE_FIELDS} == kept
            assert nodes_after[drained.name]["drained"] is True
            assert nodes_after[other.name]["drained"] is False
            assert all(n["status"] == "alive" for n in nodes_after.values())

        # The nodes' old tokens still work, and they are given the same assignments.
        restarted_nodes = [reconnect(node, url) for node in nodes]
        nodes += restarted_nodes
        new_other = next(n for n in restarted_nodes if n.name == other.name)
        new_drained = next(n for n in restarted_nodes if n.name == drained.name)
        seen = await new_other.poll()
        assert seen["counter"]["epoch"] == counter_epoch
        assert seen["counter"]["persistent-variables"] == {"count": 43}
        assert await new_drained.poll() == {}
        # A late report from the node the project left is refused: it cannot undo the move.
        with pytest.raises(Forbidden):
            await new_drained.report(
                "counter",
                "running",
                {"count": 0},
                epoch=counter_epoch - 1,
                url="file:///srv/counter.git",
            )
        async with ManagerClient(url, controller_token) as ctl:
            assert (await ctl.status(["counter"]))["counter"]["persistent-variables"] == {
                "count": 43
            }
    finally:
        for node in nodes:
            await node.close()


# writes in flight at kill -9 ----------------------------------------------------------------
@dataclass
class Progress:
    """What the writers sent and what the manager answered with success, per key."""

    sent: dict[str, int] = field(default_factory=dict)
    acked: dict[str, int] = field(default_factory=dict)
    last_started: dict[str, float] = field(default_factory=dict)
    adds_acked: list[str] = field(default_factory=list)
    add_in_flight: str | None = None


async def reporter(node: SimNode, project: str, round_no: int, progress: Progress) -> None:
    """Report new variables for one project, one at a time, until the manager goes away."""
    while True:
        n = progress.sent.get(project, 0) + 1
        progress.sent[project] = n
        progress.last_started[project] = time.monotonic()
        variables = {"n": n, "round": round_no, "history": list(range(n % 20))}
        try:
            answer = await node.report(project, "running", variables, ram=float(n % 100))
        except ConnectionFailed:
            return
        assert answer["update-result"] == "success", answer
        progress.acked[project] = n


async def restarter(ctl: ManagerClient, project: str, progress: Progress) -> None:
    """Restart one project again and again (a durable controller write each time)."""
    key = f"restart:{project}"
    while True:
        progress.sent[key] = progress.sent.get(key, 0) + 1
        progress.last_started[key] = time.monotonic()
        try:
            answer = await ctl.restart([project])
        except ConnectionFailed:
            return
        progress.acked[key] = answer["projects"][project]["restart"]


async def adder(ctl: ManagerClient, round_no: int, progress: Progress) -> None:
    """Add projects one after another until the manager goes away."""
    i = 0
    while True:
        name = f"added-{round_no}-{i}"
        progress.add_in_flight = name
        progress.last_started["add"] = time.monotonic()
        try:
            await ctl.add(name, f"file:///srv/{name}.git", {"i": i, "round": round_no})
        except ConnectionFailed:
            return
        progress.adds_acked.append(name)
        progress.add_in_flight = None
        i += 1


async def test_answered_writes_survive_kill_9_mid_stream(manager: ManagerProcess) -> None:
    rounds = 3
    url = await start(manager)
    controller_token = manager.token
    projects = [f"p{i}" for i in range(6)]
    clients: list[SimNode | ManagerClient] = []
    try:
        a = await SimNode.join(url, "pi-a")
        b = await SimNode.join(url, "pi-b")
        clients += [a, b]
        identities = [(a.name, a.token), (b.name, b.token)]
        async with ManagerClient(url, controller_token) as ctl:
            for name in projects:
                await ctl.add(name, f"file:///srv/{name}.git", {"n": 0})
            initial_status = await ctl.status(projects)
        owner = {name: initial_status[name]["node"] for name in projects}
        epochs = {name: initial_status[name]["epoch"] for name in projects}
        assert set(owner.values()) == {"pi-a", "pi-b"}

        progress = Progress()
        maybe_added: set[str] = set()
        for round_no in range(rounds):
            nodes = {name: SimNode(ManagerClient(url), name, token) for name, token in identities}
            clients += list(nodes.values())
            for node in nodes.values():
                await node.poll()
            ctl = ManagerClient(url, controller_token)
            clients.append(ctl)
            baseline = dict(progress.acked)
            adds_before = len(progress.adds_acked)
            workers = [
                asyncio.create_task(reporter(nodes[owner[p]], p, round_no, progress))
                for p in projects
            ]
            workers.append(asyncio.create_task(restarter(ctl, "p0", progress)))
            workers.append(asyncio.create_task(adder(ctl, round_no, progress)))

            async def busy(
                baseline: dict[str, int] = baseline,
                adds_before: int = adds_before,
                workers: list[asyncio.Task[None]] = workers,
            ) -> bool:
                for task in workers:
                    if task.done():
                        task.result()  # a worker that failed early fails the test here
                # Every writer has had several answers in this round.
                keys = [*projects, "restart:p0"]
                return len(progress.adds_acked) >= adds_before + 3 and all(
                    progress.acked.get(key, 0) >= baseline.get(key, 0) + 3 for key in keys
                )

            await wait_for(busy, timeout=10, what="the writers to get answers")
            killed_at = time.monotonic()
            manager.kill()
            await asyncio.wait_for(asyncio.gather(*workers), timeout=10)
            # The last request of each writer failed; some were sent before the kill, so they
            # were in flight when the manager died.
            assert any(started <= killed_at for started in progress.last_started.values())
            if progress.add_in_flight:
                maybe_added.add(progress.add_in_flight)

            url = await start(manager)
            assert manager.token == controller_token
            async with ManagerClient(url, controller_token) as check:
                status = await check.status()
                node_table = await check.nodes()
            for name in projects:
                got = status[name]["persistent-variables"]
                acked, sent = progress.acked[name], progress.sent[name]
                assert got["n"] in (acked, sent), (
                    f"round {round_no}: {name} has n={got['n']} after restart, but the last "
                    f"answered report had n={acked} (and n={sent} was in flight)"
                )
                n = got["n"]
                assert got == {"n": n, "round": round_no, "history": list(range(n % 20))}
                assert status[name]["node"] == owner[name]
                assert status[name]["epoch"] == epochs[name]
            key = "restart:p0"
            assert progress.acked[key] <= status["p0"]["restart"] <= progress.sent[key], (
                f"round {round_no}: p0's restart counter is {status['p0']['restart']} after "
                f"restart; the last answered restart set it to {progress.acked[key]}"
            )
            for name in progress.adds_acked:
                assert name in status, f"round {round_no}: answered add of {name} was lost"
                assert status[name]["initial_variables"]["i"] == int(name.rsplit("-", 1)[1])
            unexpected = set(status) - set(projects) - set(progress.adds_acked) - maybe_added
            assert not unexpected, f"projects nobody added: {unexpected}"
            assert {n: node_table[n]["status"] for n in node_table} == {
                "pi-a": "alive",
                "pi-b": "alive",
            }

        # The nodes' tokens still work after all the crashes.
        for name, token in identities:
            async with ManagerClient(url) as client:
                answer = await client.node_status(name, token)
            assert set(answer["projects"]) >= {p for p in projects if owner[p] == name}
        assert_no_plain_secrets(
            manager.data_dir,
            {"controller token": controller_token} | {f"{n} token": t for n, t in identities},
            stored=progress.adds_acked[-1],
        )
    finally:
        for each in clients:
            await each.close()


# the grace period after a restart -------------------------------------------------------------
async def test_restarted_manager_gives_nodes_a_full_timeout(tmp_path: Path) -> None:
    timeout = 2.0
    with manager_process(tmp_path / "manager", password=PASSWORD, node_timeout=timeout) as m:
        url = await start(m)
        token = m.token
        quiet = await SimNode.join(url, "quiet")
        async with ManagerClient(url, token) as ctl:
            added = await ctl.add("relay", "file:///srv/relay.git", {"on": 1})
            assert added["projects"]["relay"]["node"] == "quiet"
        chatty = await SimNode.join(url, "chatty")
        await quiet.poll()
        await quiet.report("relay", "running", {"on": 2})
        epoch = quiet.seen["relay"]["epoch"]
        await quiet.close()
        await chatty.close()

        m.kill()
        spawned = time.monotonic()
        url = await start(m)
        quiet = SimNode(ManagerClient(url), "quiet", quiet.token)
        chatty = SimNode(ManagerClient(url), "chatty", chatty.token)

        async def keep_alive() -> None:
            while True:
                await chatty.poll(wait=0.3)

        pinger = asyncio.create_task(keep_alive())
        try:
            async with ManagerClient(url, token) as ctl:
                # For most of a node-timeout after the restart, the silent node is alive and
                # its running project is not disturbed.
                while time.monotonic() < spawned + timeout * 0.6:
                    nodes = await ctl.nodes()
                    assert nodes["quiet"]["status"] == "alive", nodes["quiet"]
                    relay = (await ctl.status(["relay"]))["relay"]
                    assert (relay["node"], relay["epoch"], relay["status"]) == (
                        "quiet",
                        epoch,
                        "running",
                    )
                    await asyncio.sleep(0.05)

                # Silent for a whole node-timeout since the restart: now it is dead, and its
                # project moves to the node that keeps polling.
                async def quiet_dead() -> bool:
                    return bool((await ctl.nodes())["quiet"]["status"] == "dead")

                await wait_for(quiet_dead, timeout=timeout + 5, what="the silent node to die")
                assert time.monotonic() - spawned >= timeout
                assert (await ctl.nodes())["chatty"]["status"] == "alive"

                async def relay_moved() -> bool:
                    return bool((await ctl.status(["relay"]))["relay"]["node"] == "chatty")

                await wait_for(relay_moved, timeout=5, what="relay to move to chatty")
                relay = (await ctl.status(["relay"]))["relay"]
                assert relay["epoch"] > epoch
                assert relay["persistent-variables"] == {"on": 2}
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
            await quiet.close()
            await chatty.close()


# secrets on disk --------------------------------------------------------------------------------
async def test_manager_token_prints_the_controller_token(manager: ManagerProcess) -> None:
    url = await start(manager)
    data = manager.controller_json()
    assert data["url"] == url
    assert mode(manager.controller_file) == 0o600
    command = [sys.executable, "-m", "syncopate", "manager", "token"]
    result = subprocess.run(
        [*command, "--data-dir", str(manager.data_dir)],
        capture_output=True,
        text=True,
        timeout=20,
        env=manager.environment(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == data["token"] + "\n"
    # ... and it is the token the manager accepts.
    async with ManagerClient(url, result.stdout.strip()) as ctl:
        assert await ctl.status() == {}
    async with ManagerClient(url, "not-the-token") as ctl:
        with pytest.raises(Unauthorized):
            await ctl.status()


async def test_manager_token_user_makes_a_persons_own_token(manager: ManagerProcess) -> None:
    """`manager token --user bob`, against a running manager: bob's name goes on his commands;
    asking again replaces bob's token (the old one is refused); the main token keeps working."""
    url = await start(manager)

    def bob_token() -> str:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "syncopate",
                "manager",
                "token",
                "--user",
                "bob",
                "--data-dir",
                str(manager.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=20,
            env=manager.environment(),
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    first = bob_token()
    async with ManagerClient(url) as node:
        name, _ = await node.initialize(PASSWORD, "pi-a", agent_version="test")
    async with ManagerClient(url, first) as bob:
        sent = await bob.command_send([name], "print(1)")
    assert [c["user"] for c in sent.values()] == ["bob"]
    second = bob_token()
    assert second != first
    async with ManagerClient(url, first) as old:
        with pytest.raises(Unauthorized):
            await old.status()
    async with ManagerClient(url, second) as bob, ManagerClient(url, manager.token) as admin:
        assert await bob.status() == await admin.status()
        mine = await admin.command_list(user="bob")
    assert len(mine["commands"]) == 1


async def test_generated_password_is_kept_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "manager"
    with manager_process(data_dir) as m:
        url = await start(m)
        password_file = data_dir / "password"
        assert password_file.exists(), m.output
        assert mode(password_file) == 0o600
        assert mode(m.controller_file) == 0o600
        password = password_file.read_text(encoding="utf-8").strip()
        assert len(password) >= 12
        name, _ = await join(url, "first", password)
        assert name == "first"
        with pytest.raises(Unauthorized):
            await join(url, "intruder", PASSWORD)

        m.kill()
        url = await start(m)
        assert password_file.read_text(encoding="utf-8").strip() == password
        name, token = await join(url, "second", password)
        assert name == "second"
        async with ManagerClient(url) as client:
            assert (await client.node_status(name, token))["name"] == "second"
        m.stop()

    # --password wins over the kept one.
    with manager_process(data_dir, password="given-password") as m:
        url = await start(m)
        name, _ = await join(url, "third", "given-password")
        assert name == "third"
        with pytest.raises(Unauthorized):
            await join(url, "fourth", password)


async def test_password_from_environment(tmp_path: Path) -> None:
    data_dir = tmp_path / "manager"
    with manager_process(data_dir, env={"SYNCOPATE_PASSWORD": "from-the-env"}) as m:
        url = await start(m)
        name, token = await join(url, "envnode", "from-the-env")
        assert name == "envnode"
        with pytest.raises(Unauthorized):
            await join(url, "other", PASSWORD)
        async with ManagerClient(url) as client:
            assert (await client.node_status(name, token))["name"] == "envnode"
        assert not (data_dir / "password").exists(), "a given password must not be generated"


async def test_acknowledged_commands_survive_kill_9(manager: ManagerProcess) -> None:
    """Every answered step of every command is there after kill -9, and the open ones go on."""
    url = await start(manager)
    async with ManagerClient(url) as node, ManagerClient(url, manager.token) as ctl:
        name, token = await node.initialize(PASSWORD, "pi-a", agent_version="test")

        async def send(code: str) -> int:
            return int(next(iter(await ctl.command_send([name], code))))

        analyzed, responded, collected = await send("a"), await send("b"), await send("c")
        handed = await node.node_status(name, token)
        assert [c["id"] for c in handed["commands"]] == [analyzed, responded, collected]
        await node.node_command_result(name, token, analyzed, "A", 0, 0.1)
        await node.node_command_result(name, token, responded, "B", 2, 0.2)
        await ctl.command_analyze(analyzed, "fine")
        canceled, requested = await send("d"), await send("e")
        await ctl.command_cancel(canceled)
        before = await ctl.command_list()
    assert [c["state"] for c in before["commands"].values()] == [
        "requested",
        "canceled",
        "collected",
        "responded",
        "analyzed",
    ]
    manager.kill()

    url = await start(manager)
    async with ManagerClient(url) as node, ManagerClient(url, manager.token) as ctl:
        assert await ctl.command_list() == before
        # The open ones carry on: the requested one is handed out, the collected one answered.
        handed = await node.node_status(name, token)
        assert [c["id"] for c in handed["commands"]] == [requested]
        await node.node_command_result(name, token, collected, "C", 0, 0.3)
        assert (await ctl.command_show(collected))["response"] == "C"
        assert int(next(iter(await ctl.command_send([name], "f")))) == requested + 1
