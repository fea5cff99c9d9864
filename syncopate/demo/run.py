"""The demo from start to end: repositories, manager, agents, projects, the view, and the stop.

    run_demo(DemoOptions(nodes=3))   # returns after Ctrl-C/SIGTERM once nothing is left running

Scratch layout: `manager/` and `nodes/<name>/` (data dirs), `repos/<example>/` (what the nodes
clone), `logs/<process>.log`, and `env` (the two variables another terminal needs).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from syncopate.client import ManagerClient
from syncopate.demo import DemoError
from syncopate.demo.fleet import Fleet
from syncopate.demo.repos import find_examples, make_repo, require_git
from syncopate.demo.view import LineView, Snapshot, TableView, View
from syncopate.errors import Conflict, SyncopateError
from syncopate.paths import write_private

JOIN_TIMEOUT = 60.0
REFRESH = 1.0
CLIENT_TIMEOUT = 5.0  # a slow answer shows as a problem in the view instead of freezing it
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class DemoOptions:
    nodes: int = 3
    directory: Path | None = None  # None: a new temporary directory, removed at the end
    tui: bool = True


def say(message: str) -> None:
    print(message, flush=True)


def run_demo(options: DemoOptions) -> None:
    """Run the demo until Ctrl-C, SIGTERM or SIGHUP; return once everything it started is gone.

    Raises DemoError (one line for the user) when it cannot start, when the manager dies, or
    when a process could not be ended.
    """
    require_git()
    examples = find_examples()
    if options.directory is None:
        scratch = Path(tempfile.mkdtemp(prefix="syncopate-demo-"))
    else:
        scratch = options.directory.expanduser().resolve()
        scratch.mkdir(parents=True, exist_ok=True)
    with _only_demo_in(scratch):
        count = f"{options.nodes} nodes and {len(examples)} example projects"
        say(f"Syncopate demo: {count} in {scratch}")
        asyncio.run(_demo(options, scratch, examples))
    if options.directory is None:
        shutil.rmtree(scratch, ignore_errors=True)
        say(f"demo: removed {scratch} (`--dir` keeps the logs and state)")


@contextlib.contextmanager
def _only_demo_in(scratch: Path) -> Iterator[None]:
    """Hold a lock on `scratch`: two demos on the same data dirs would fight over them."""
    with (scratch / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DemoError(f"another demo is running in {scratch}") from None
        yield


async def _demo(options: DemoOptions, scratch: Path, examples: list[Path]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        # Also SIGHUP: a closed terminal must not leave the nodes, in their own sessions, behind.
        loop.add_signal_handler(sig, stop.set)
    fleet = Fleet(scratch, options.nodes)
    failure: DemoError | None = None
    left: list[psutil.Process] = []
    try:
        client = await _start_or_stop(fleet, examples, stop)
        if client is not None:
            async with client:
                _announce(fleet)
                await _show(fleet, client, stop, options.tui)
    except DemoError as exc:
        failure = exc
    finally:
        if fleet.manager is not None:
            say("demo: stopping the nodes (each stops its projects first), then the manager")
            left = await fleet.stop(say)
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
    if left:
        pids = ", ".join(str(p.pid) for p in left)
        raise DemoError(f"processes of the demo are still running (pids {pids}); see {scratch}")
    if failure is not None:
        raise failure
    if fleet.manager is not None:
        say("demo: stopped; nothing left running")


async def _start_or_stop(
    fleet: Fleet, examples: list[Path], stop: asyncio.Event
) -> ManagerClient | None:
    """Start everything, or stop starting at a signal (None)."""
    starting = asyncio.create_task(_start(fleet, examples))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if starting.done():
        return starting.result()
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError, SyncopateError):
        client = await starting
        await client.close()
    return None


async def _start(fleet: Fleet, examples: list[Path]) -> ManagerClient:
    repos: dict[str, str] = {}
    for example in examples:
        repos[example.name] = await asyncio.to_thread(make_repo, example, fleet.scratch / "repos")
    await fleet.start_manager()
    assert fleet.manager is not None
    say(f"manager  {fleet.url}  pid {fleet.manager.pid}  log {fleet.manager.log}")
    fleet.start_agents()
    client = ManagerClient(fleet.url, fleet.token, timeout=CLIENT_TIMEOUT)
    try:
        for agent, name in zip(fleet.agents, await _wait_for_nodes(fleet, client), strict=True):
            say(f"node     {name}  pid {agent.pid}  log {agent.log}")
        for name, url in repos.items():
            # Conflict: added by an earlier demo in the same --dir, and it carries on.
            with contextlib.suppress(Conflict):
                await client.add(name, url)
            say(f"project  {name}  {url}")
    except BaseException:
        await client.close()
        raise
    return client


async def _wait_for_nodes(fleet: Fleet, client: ManagerClient) -> list[str]:
    """Until every agent is an alive node, so the projects spread at once instead of moving
    later; the names they joined under."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while True:
        for agent in fleet.agents:
            if agent.exit_code is not None:
                raise DemoError(f"node {agent.name} exited ({agent.exit_code}); see {agent.log}")
        names = [fleet.joined_as(agent) for agent in fleet.agents]
        with contextlib.suppress(SyncopateError):
            nodes = await client.nodes()
            if all(n and nodes.get(n, {}).get("status") == "alive" for n in names):
                return [str(n) for n in names]
        if time.monotonic() > deadline:
            raise DemoError(
                f"the nodes did not all join within {JOIN_TIMEOUT:g}s; see {fleet.logs_dir}"
            )
        await asyncio.sleep(0.1)


def _announce(fleet: Fleet) -> None:
    env_file = fleet.scratch / "env"
    write_private(
        env_file, f"export SYNCOPATE_MANAGER={fleet.url}\nexport SYNCOPATE_TOKEN={fleet.token}\n"
    )
    say("")
    say("To drive the fleet from another terminal:")
    say(f"SYNCOPATE_MANAGER={fleet.url}")
    say(f"SYNCOPATE_TOKEN={fleet.token}")
    say(f"  export both (or `. {env_file}`), then e.g. `syncopate project list`")
    say("Ctrl-C stops everything.")
    say("")


def tui_notes(fleet: Fleet) -> list[str]:
    """What `_start` and `_announce` printed, for the TUI that covers it: its `?` screen
    (open when the demo starts it) begins with these lines."""
    env_file = fleet.scratch / "env"
    nodes = ", ".join(f"{fleet.joined_as(a) or a.name} {a.pid}" for a in fleet.agents)
    manager = f"manager pid {fleet.manager.pid}" if fleet.manager is not None else "manager"
    return [
        f"In another terminal (or `. {env_file}`):",
        f"export SYNCOPATE_MANAGER={fleet.url}",
        f"export SYNCOPATE_TOKEN={fleet.token}",
        f"{manager} · node pids: {nodes}",
        f"logs in {fleet.logs_dir} · Ctrl-C or q stops the demo",
    ]


async def open_tui(url: str, token: str, stop: asyncio.Event, notes: list[str]) -> bool:
    """Run the TUI on the demo's manager until `stop` or the user quits it (which sets `stop`).

    `notes`: what the demo printed, which the TUI covers; it shows them (tui_notes).
    """
    from syncopate.tui.app import SyncopateApp

    app = SyncopateApp(url, token, notes=notes)

    async def end_with_the_demo() -> None:
        await stop.wait()
        app.exit()

    watcher = asyncio.create_task(end_with_the_demo())
    try:
        await app.run_async()
    finally:
        watcher.cancel()
        stop.set()
    return True


async def _show(fleet: Fleet, client: ManagerClient, stop: asyncio.Event, tui: bool) -> None:
    """Show the fleet until `stop`: the TUI or a live table on a terminal, else plain lines."""
    on_terminal = sys.stdout.isatty()
    if tui and on_terminal and await open_tui(fleet.url, fleet.token, stop, tui_notes(fleet)):
        return
    view: View = TableView() if on_terminal else LineView()
    try:
        await _watch(fleet, client, stop, view)
    finally:
        view.close()


async def _watch(fleet: Fleet, client: ManagerClient, stop: asyncio.Event, view: View) -> None:
    noted: set[str] = set()
    while not stop.is_set():
        manager = fleet.manager
        if manager is not None and manager.exit_code is not None:
            raise DemoError(f"the manager exited ({manager.exit_code}); see {manager.log}")
        for agent in fleet.agents:
            if agent.exit_code is not None and agent.name not in noted:
                noted.add(agent.name)
                view.note(
                    f"demo: node {agent.name} exited ({agent.exit_code}); its projects move to "
                    f"the other nodes (log: {agent.log})"
                )
        # Seen each second, so projects of an agent someone killed are still known at the end.
        fleet.remember_projects()
        try:
            snapshot = Snapshot(await client.nodes(), await client.status())
        except SyncopateError as exc:
            snapshot = Snapshot({}, {}, problem=f"the manager did not answer ({exc})")
        view.show(snapshot)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REFRESH):
                await stop.wait()
