"""`syncopate logs -f` across a manager restart: every kept line once, in order, no false gap.

A real manager (stopped and started again on the same data dir and port), a real agent and
ticker project; the follower runs as a subprocess, as a person would run it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.gitrepos import Repo
from tests.helpers import RunningManager, running_manager, wait_for
from tests.integration.test_agent import PY, Fleet
from tests.integration.test_logs import TICKER, add_ticker, kept, until_logged

pytestmark = pytest.mark.slow


class Reader:
    """Collects a stream's lines in a thread, so a test can wait for them with a deadline."""

    def __init__(self, stream: object, *, prefixed: bool = False) -> None:
        self.lines: list[str] = []
        self.prefixed = prefixed
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            text = line.rstrip("\n")
            self.lines.append(text.split(" | ", 1)[1] if self.prefixed else text)

    def join(self) -> None:
        self._thread.join(10)


@pytest.mark.parametrize("which", [["ticker"], ["--all"]], ids=["project", "all"])
async def test_follow_prints_every_line_once_across_a_manager_restart(
    tmp_path: Path, which: list[str]
) -> None:
    repo = Repo.create(tmp_path / "repos" / "ticker", {"tick.py": TICKER})
    data_dir = tmp_path / "manager"
    async with running_manager(data_dir, node_timeout=30.0) as first:
        fleet = Fleet(first, tmp_path)
        await fleet.start_agent("pi-1")
        async with first.client() as ctl:
            await ctl.add("ticker", repo.url, command=f"{PY} tick.py ticker")
        await until_logged(first, "ticker", "ticker 5")
        port = int(first.url.rsplit(":", 1)[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
        env |= {"SYNCOPATE_MANAGER": first.url, "SYNCOPATE_TOKEN": first.token}
        argv = [sys.executable, "-m", "syncopate", "logs", *which, "-f", "-n", "3", "--no-time"]
        follower = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        # --all: `ticker | ticker 7`, the prefix dropped here.
        out, err = Reader(follower.stdout, prefixed=which == ["--all"]), Reader(follower.stderr)

        async def printed(count: int) -> bool:
            return len(out.lines) >= count

        await wait_for(lambda: printed(3), timeout=30, what="the follower's first lines")
    try:
        # The manager is away: the follower says so, and the agent keeps the new lines.
        await wait_for(
            lambda: asyncio.sleep(0, result=any("lost the manager" in e for e in err.lines)),
            timeout=30,
            what="the follower to notice the manager left",
        )
        async with running_manager(data_dir, node_timeout=30.0, port=port, keep_token=True) as b:
            fleet.manager = b
            seen = len(out.lines)
            await wait_for(lambda: printed(seen + 40), timeout=30, what="lines after the restart")
            await fleet.stop_agent("pi-1")
            async with b.client() as ctl:
                kept_lines = (await ctl.logs("ticker", 1000))["lines"]
            await wait_for(
                lambda: asyncio.sleep(0, result=out.lines[-1:] == kept_lines[-1:]),
                timeout=30,
                what="the follower to print the last kept line",
            )
    finally:
        follower.send_signal(signal.SIGINT)
        await asyncio.to_thread(follower.wait, 10)
        out.join()
        err.join()
        for stream in (follower.stdout, follower.stderr):
            assert stream is not None
            stream.close()
    # -n 3: it began with the last 3 lines; after the restart it printed every line that came
    # while it was away (more than 3), not just the last 3 the manager kept.
    ticks = [int(line.split()[1]) for line in out.lines if line.startswith("ticker ")]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), out.lines
    assert out.lines == kept_lines[-len(out.lines) :]
    assert not [e for e in err.lines if "no longer kept" in e], err.lines


async def test_lines_0_follows_new_lines_only_and_bad_counts_are_refused_in_words(
    fleet: Fleet,
) -> None:
    await fleet.start_agent("pi-1")
    await add_ticker(fleet, "ticker")
    before = await until_logged(fleet.manager, "ticker", "ticker 5")
    for args in (["ticker"], ["--all"], ["no-such-project"]):
        refused = await cli_fails(fleet.manager, "logs", *args, "-n", "0")
        assert "--lines 0 goes with --follow" in refused, refused
    for bad in ("-1", "1001"):
        refused = await cli_fails(fleet.manager, "logs", "ticker", "-n", bad)
        assert "give 0 to 1000" in refused and "Input should be" not in refused, refused

    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    env |= {"SYNCOPATE_MANAGER": fleet.manager.url, "SYNCOPATE_TOKEN": fleet.manager.token}
    for args in (["ticker"], ["--all"]):
        argv = [sys.executable, "-m", "syncopate", "logs", *args, "-f", "-n", "0", "--no-time"]
        with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) as follower:
            assert follower.stdout is not None
            try:
                first = await asyncio.wait_for(asyncio.to_thread(follower.stdout.readline), 30)
            finally:
                follower.send_signal(signal.SIGINT)
                assert await asyncio.to_thread(follower.wait, 10) == 0
        # A line printed after it started, not one of those kept before.
        number = int(first.rstrip("\n").rsplit(" ", 1)[1])
        assert number > int(before[-1].rsplit(" ", 1)[1]), first
        before = (await kept(fleet.manager, "ticker"))["lines"]


async def cli_fails(manager: RunningManager, *args: str) -> str:
    """Run `syncopate ARGS`, which must fail; what it wrote to stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    env |= {"SYNCOPATE_MANAGER": manager.url, "SYNCOPATE_TOKEN": manager.token}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "syncopate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode != 0, (args, done.stdout)
    return done.stderr
