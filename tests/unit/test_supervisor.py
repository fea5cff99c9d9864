"""ProjectProcess and end_leftover, with real child processes (sh, sleep, python)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from syncopate.node.backoff import BackoffPolicy
from syncopate.node.leftovers import MARKER, marked, marker_value
from syncopate.node.logs import LogSink
from syncopate.node.supervisor import ProjectProcess, end_all_leftovers, end_leftover

PY = shlex.quote(sys.executable)
SLEEPER = "exec sleep 1000"


async def wait_until(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Poll `predicate` until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {predicate}")
        await asyncio.sleep(0.01)


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def group_pids(pgid: int) -> list[int]:
    """Live processes of group `pgid`, found independently of the supervisor's own check."""
    pids = []
    for pid in psutil.pids():
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pgid and alive(pid):
                pids.append(pid)
    return pids


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def python(script: str) -> str:
    return f"{PY} -c {shlex.quote(script)}"


def numbers_after(prefix: str, lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines if line.startswith(prefix + " ")]


class Projects:
    """Makes ProjectProcesses in a temporary directory; ends every one and its groups after."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[ProjectProcess] = []
        self.groups: set[int] = set()

    def __call__(self, command: str, name: str = "demo", **options: Any) -> ProjectProcess:
        on_change: Callable[[], None] | None = options.pop("on_change", None)
        options.setdefault("cwd", self.root)
        options.setdefault("env", dict(os.environ))
        made: list[ProjectProcess] = []

        def changed() -> None:
            if made[0].pgid is not None:
                self.groups.add(made[0].pgid)
            if on_change is not None:
                on_change()

        sink = LogSink(self.root / "logs" / f"{name}.log")
        process = ProjectProcess(
            name, command, log=sink, record_dir=self.records, on_change=changed, **options
        )
        made.append(process)
        self.made.append(process)
        return process

    @property
    def records(self) -> Path:
        return self.root / "run"

    async def close(self) -> None:
        for process in self.made:
            await process.stop()
            process.log.close()
        for pgid in self.groups:
            kill_group(pgid)


@pytest.fixture
async def projects(tmp_path: Path) -> AsyncIterator[Projects]:
    made = Projects(tmp_path)
    try:
        yield made
    finally:
        await made.close()


async def test_output_reaches_the_log_file_and_the_tail(projects: Projects) -> None:
    statuses: list[str] = []
    process: ProjectProcess = projects(
        f"echo one; echo two >&2; {SLEEPER}", on_change=lambda: statuses.append(process.status)
    )
    await process.start()
    assert process.status == "running"
    assert process.pid is not None and process.pgid == process.pid
    assert process.started_at is not None
    await wait_until(lambda: process.log.tail() == ["one", "two"])
    assert process.log.path.read_text().splitlines() == ["one", "two"]
    await process.stop()
    assert process.status == "stopped"
    assert process.pid is None and process.started_at is None
    assert statuses == ["starting", "running", "stopped"]


async def test_cwd_and_env_are_the_ones_given(projects: Projects) -> None:
    env = {"PATH": os.environ["PATH"], "SYNCOPATE_PROJECT": "demo"}
    process = projects(f'echo "$SYNCOPATE_PROJECT home=${{HOME-unset}} $(pwd)"; {SLEEPER}', env=env)
    await process.start()
    await wait_until(lambda: process.log.tail())
    assert process.log.tail() == [f"demo home=unset {projects.root}"]


async def test_a_crash_is_restarted_and_its_exit_code_reported(projects: Projects) -> None:
    seen: list[tuple[str, int | None]] = []
    process: ProjectProcess = projects(
        "echo run; exit 3", on_change=lambda: seen.append((process.status, process.exit_code))
    )
    await process.start()
    await wait_until(lambda: process.restarts >= 2)
    assert process.exit_code == 3
    assert ("crashed", 3) in seen
    assert process.failures_in_a_row >= 2
    assert process.log.tail().count("run") >= 2
    assert "[syncopate] exited (code 3)" in " ".join(process.log.tail())


async def test_a_stable_run_forgives_earlier_failures(projects: Projects) -> None:
    process = projects("exit 1", policy=BackoffPolicy(stable_after=0.0))
    await process.start()
    await wait_until(lambda: process.restarts >= 3)
    assert process.failures_in_a_row == 1


async def test_stop_kills_a_process_that_ignores_sigterm(projects: Projects) -> None:
    script = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', os.getpid(), flush=True)\n"
        "time.sleep(1000)\n"
    )
    process = projects(python(script), grace=0.5)
    await process.start()
    pgid = process.pgid
    assert pgid is not None
    await wait_until(lambda: numbers_after("ready", process.log.tail()))
    [child] = numbers_after("ready", process.log.tail())
    await process.stop()
    assert process.status == "stopped"
    assert not alive(child)
    assert group_pids(pgid) == []
    assert any("sending SIGKILL" in line for line in process.log.tail())


async def test_stop_ends_background_children(projects: Projects) -> None:
    process = projects("sleep 1000 & echo child $!; wait")
    await process.start()
    pgid = process.pgid
    assert pgid is not None
    await wait_until(lambda: numbers_after("child", process.log.tail()))
    [child] = numbers_after("child", process.log.tail())
    assert alive(child)
    await process.stop()
    assert not alive(child)
    assert group_pids(pgid) == []


async def test_a_crash_restart_ends_the_children_left_behind(projects: Projects) -> None:
    process = projects("sleep 1000 & echo child $!; exit 3")
    await process.start()
    await wait_until(lambda: process.restarts >= 2)
    # Runs 1 and 2 have ended and been cleaned up before the restarts that followed them.
    children = numbers_after("child", process.log.tail())
    assert len(children) >= 2
    assert not alive(children[0])
    assert not alive(children[1])


async def test_the_record_exists_while_it_runs(projects: Projects) -> None:
    process = projects(SLEEPER)
    record_file = projects.records / "demo.json"
    assert not record_file.exists()
    await process.start()
    assert process.pid is not None
    record = json.loads(record_file.read_text())
    assert record["pid"] == process.pid
    assert record["pgid"] == process.pgid
    assert record["command"] == SLEEPER
    assert record["create_time"] == pytest.approx(psutil.Process(process.pid).create_time())
    await process.stop()
    assert not record_file.exists()


async def test_restart_starts_a_new_process_and_counts(projects: Projects) -> None:
    process = projects(SLEEPER)
    await process.start()
    first = process.pid
    assert first is not None
    await process.restart()
    assert process.status == "running"
    assert process.pid not in (None, first)
    assert process.restarts == 1
    assert process.failures_in_a_row == 0
    assert not alive(first)


async def test_start_and_stop_are_idempotent(projects: Projects) -> None:
    process = projects(SLEEPER)
    await process.stop()
    assert process.status == "stopped"
    await process.start()
    pid = process.pid
    await process.start()
    assert process.pid == pid
    assert process.restarts == 0
    await process.stop()
    await process.stop()
    assert process.status == "stopped"
    assert pid is not None and not alive(pid)


async def test_stop_during_the_backoff_does_not_wait_for_it(projects: Projects) -> None:
    # A backoff longer than the test timeout: only an interrupted wait lets this pass.
    process = projects("exit 1", policy=BackoffPolicy(first=1000.0, cap=1000.0))
    await process.start()
    await wait_until(lambda: process.status == "crashed")
    await process.stop()
    assert process.status == "stopped"
    assert process.restarts == 0


async def test_start_raises_when_the_command_cannot_spawn(projects: Projects) -> None:
    process = projects(SLEEPER, cwd=projects.root / "missing")
    with pytest.raises(FileNotFoundError):
        await process.start()
    assert process.status == "stopped"
    assert not (projects.records / "demo.json").exists()


async def test_a_failing_on_change_does_not_stop_supervision(projects: Projects) -> None:
    def broken() -> None:
        raise RuntimeError("the agent's bug")

    process = projects("echo run; exit 3", on_change=broken)
    await process.start()
    await wait_until(lambda: process.restarts >= 1)
    assert process.exit_code == 3


@pytest.mark.parametrize("settled", [False, True])
async def test_cancelled_supervision_ends_the_group(projects: Projects, settled: bool) -> None:
    # The agent's task tree being torn down cancels the supervising task, perhaps before its
    # first step: the group must not be left running unsupervised.
    process = projects("sleep 1000 & echo child $!; wait")
    await process.start()
    pgid = process.pgid
    assert pgid is not None and process._task is not None
    if settled:
        await wait_until(lambda: numbers_after("child", process.log.tail()))
    process._task.cancel()
    await wait_until(lambda: process.status == "stopped")
    await wait_until(lambda: group_pids(pgid) == [])
    assert not (projects.records / "demo.json").exists()
    await process.start()
    assert process.status == "running"


async def test_stop_after_the_log_was_closed(projects: Projects) -> None:
    process = projects("sleep 1000 & echo child $!; wait")
    await process.start()
    await wait_until(lambda: numbers_after("child", process.log.tail()))
    [child] = numbers_after("child", process.log.tail())
    process.log.close()
    await process.stop()
    assert process.status == "stopped"
    assert not alive(child)


async def test_ram_counts_the_process_tree(projects: Projects) -> None:
    script = "import time\ndata = b'x' * (64 << 20)\nprint('ready', flush=True)\ntime.sleep(1000)"
    process = projects(python(script))
    assert process.ram_mb() == 0.0
    await process.start()
    await wait_until(lambda: "ready" in process.log.tail())
    assert process.ram_mb() > 50
    await process.stop()
    assert process.ram_mb() == 0.0


# leftovers of a crashed agent ------------------------------------------------------------------
AGENT = """
import asyncio, os, sys
from pathlib import Path
from syncopate.node.logs import LogSink
from syncopate.node.supervisor import ProjectProcess

async def main() -> None:
    root = Path(sys.argv[1])
    process = ProjectProcess(
        "orphan", "sleep 1000 & exec sleep 1000", root, dict(os.environ),
        LogSink(root / "orphan.log"), root / "run",
    )
    await process.start()
    print(process.pgid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def write_record(records: Path, name: str, **fields: Any) -> Path:
    records.mkdir(parents=True, exist_ok=True)
    path = records / f"{name}.json"
    path.write_text(json.dumps({"command": "sleep 1000", **fields}))
    return path


def test_end_leftover_ends_what_a_killed_agent_left(tmp_path: Path) -> None:
    agent = subprocess.Popen([sys.executable, "-c", AGENT, str(tmp_path)], stdout=subprocess.PIPE)
    pgid = 0
    try:
        assert agent.stdout is not None
        pgid = int(agent.stdout.readline())
        agent.kill()
        agent.wait()
        assert len(group_pids(pgid)) == 2  # the project outlived its agent
        assert end_leftover(tmp_path / "run", "orphan") is True
        assert group_pids(pgid) == []
        assert not (tmp_path / "run" / "orphan.json").exists()
    finally:
        agent.kill()
        agent.wait()
        if agent.stdout is not None:
            agent.stdout.close()
        if pgid:
            kill_group(pgid)


@pytest.mark.parametrize(
    ("recorded_later", "ends_it"),
    [
        (0.0, True),
        # members older than the recorded leader cannot be its children: left alone
        (1000.0, False),
    ],
)
def test_end_leftover_ends_children_whose_leader_is_gone(
    tmp_path: Path, recorded_later: float, ends_it: bool
) -> None:
    shell = subprocess.Popen(
        ["/bin/sh", "-c", "sleep 1000 & echo $!"], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        create_time = psutil.Process(shell.pid).create_time() + recorded_later
        assert shell.stdout is not None
        child = int(shell.stdout.readline())
        shell.wait()
        assert alive(child)
        write_record(tmp_path, "gone", pid=shell.pid, pgid=shell.pid, create_time=create_time)
        assert end_leftover(tmp_path, "gone") is ends_it
        assert alive(child) is not ends_it
        assert not (tmp_path / "gone.json").exists()
    finally:
        kill_group(shell.pid)
        shell.wait()
        if shell.stdout is not None:
            shell.stdout.close()


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


@pytest.mark.parametrize(
    ("case", "ends_it"),
    [
        ("created at another time", False),
        ("created at another time since boot", False),
        ("of another boot", False),
        ("the clock was set after the record", True),
        ("the same process", True),
    ],
)
def test_end_leftover_checks_it_is_the_recorded_process(
    tmp_path: Path, case: str, ends_it: bool
) -> None:
    other = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        created = psutil.Process(other.pid).create_time()
        since_boot = created - psutil.boot_time()
        fields: dict[str, Any] = {
            "created at another time": {"create_time": created - 1000},
            "created at another time since boot": {
                "create_time": created,
                "since_boot": since_boot - 5,
                "boot_id": boot_id(),
            },
            "of another boot": {
                "create_time": created,
                "since_boot": since_boot,
                "boot_id": "another-boot",
            },
            "the clock was set after the record": {
                "create_time": created - 3600,
                "since_boot": since_boot,
                "boot_id": boot_id(),
            },
            "the same process": {"create_time": created},
        }[case]
        record = write_record(tmp_path, "p", pid=other.pid, pgid=other.pid, **fields)
        assert end_leftover(tmp_path, "p") is ends_it
        assert not record.exists()
        if ends_it:
            assert other.wait() == -signal.SIGTERM
        else:
            assert other.poll() is None and alive(other.pid)
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"pid": 0, "pgid": 0, "create_time": 1.0}',  # killpg(0) would hit the agent itself
        '{"pid": true, "pgid": 5000, "create_time": 1.0}',
        '{"pid": 5000, "pgid": 5000}',
    ],
)
def test_end_leftover_ignores_and_deletes_an_invalid_record(tmp_path: Path, text: str) -> None:
    (tmp_path / "bad.json").write_text(text)
    assert end_leftover(tmp_path, "bad") is False
    assert not (tmp_path / "bad.json").exists()


def test_end_leftover_without_a_record(tmp_path: Path) -> None:
    assert end_leftover(tmp_path, "nothing") is False
    assert end_all_leftovers(tmp_path / "no-such-dir") == []


def test_end_all_leftovers_names_what_it_ended(tmp_path: Path) -> None:
    left = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    unrelated = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        created = psutil.Process(left.pid).create_time()
        write_record(tmp_path, "left", pid=left.pid, pgid=left.pid, create_time=created)
        stale = psutil.Process(unrelated.pid).create_time() - 1000
        write_record(tmp_path, "stale", pid=unrelated.pid, pgid=unrelated.pid, create_time=stale)
        assert end_all_leftovers(tmp_path) == ["left"]
        assert list(tmp_path.glob("*.json")) == []
        assert left.wait() == -signal.SIGTERM
        assert unrelated.poll() is None
    finally:
        for proc in (left, unrelated):
            proc.kill()
            proc.wait()


# crash loop -------------------------------------------------------------------------------------


async def test_a_crash_loop_fails_with_the_reason_and_stops_restarting(projects: Projects) -> None:
    seen: list[str] = []
    policy = BackoffPolicy(first=0.01, cap=0.05, crash_loop=4)
    process: ProjectProcess = projects(
        "echo boom >&2; exit 7", policy=policy, on_change=lambda: seen.append(process.status)
    )
    await process.start()
    await wait_until(lambda: process.status == "failed")
    assert process.restarts == 3  # four runs: the first start and three restarts
    assert process.exit_code == 7 and process.pid is None
    assert process.reason.startswith("crash loop: 4 runs in a row each ended within 10s")
    assert "(last: code 7)" in process.reason
    assert process.reason.endswith("last output: boom | boom | boom")
    assert seen[-2:] == ["crashed", "failed"]
    assert process.log.tail()[-1] == f"[syncopate] {process.reason}"
    # Stays down: a stop asks nothing of it, and its status does not move on its own.
    lines = len(process.log.tail())
    await process.stop()
    assert process.status == "failed" and len(process.log.tail()) == lines


async def test_restart_after_a_crash_loop_runs_it_again(projects: Projects) -> None:
    flag = projects.root / "fixed"
    policy = BackoffPolicy(first=0.01, cap=0.05, crash_loop=3)
    process = projects(f"test -e {shlex.quote(str(flag))} || exit 1; {SLEEPER}", policy=policy)
    await process.start()
    await wait_until(lambda: process.status == "failed")
    flag.touch()
    await process.restart()
    assert process.status == "running" and process.reason == ""
    assert process.pid is not None and alive(process.pid)


async def test_crash_loop_zero_never_gives_up(projects: Projects) -> None:
    process = projects("exit 1", policy=BackoffPolicy(first=0.0, cap=0.0, crash_loop=0))
    await process.start()
    await wait_until(lambda: process.restarts >= 12)
    assert process.status != "failed"


# leftovers found by the marker every project process carries ---------------------------------


def test_end_all_leftovers_ends_unrecorded_processes_by_their_marker(tmp_path: Path) -> None:
    home, other_home = tmp_path / "node", tmp_path / "other-node"
    env = {**os.environ, MARKER: marker_value(home), "SYNCOPATE_PROJECT": "blink"}
    # An agent killed between the spawn and the record: no record, and a child of the project
    # that moved to a session of its own.
    unrecorded = subprocess.Popen(
        ["sh", "-c", "setsid sleep 1000 & exec sleep 1000"], env=env, start_new_session=True
    )
    others = subprocess.Popen(
        ["sleep", "1000"], env={**env, MARKER: marker_value(other_home)}, start_new_session=True
    )
    try:

        def ours() -> list[psutil.Process]:
            return [proc for proc, _ in marked(home)]

        deadline = time.monotonic() + 10
        while len(ours()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # the background sleep is forked by sh
        assert len(ours()) == 2
        assert end_all_leftovers(tmp_path / "records", home) == ["blink"]
        assert ours() == []
        assert unrecorded.wait() == -signal.SIGTERM
        assert others.poll() is None  # another agent's project is not touched
    finally:
        for proc in (unrecorded, others):
            proc.kill()
            proc.wait()
