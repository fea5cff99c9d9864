"""The example projects on their own, run and stopped the way a node runs and stops them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from syncopate import variables
from syncopate.demo.repos import EXAMPLES_DIR, IGNORED, find_examples
from syncopate.node.runcommand import resolve
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


class Example:
    """One run of an example, as the agent runs it: its command under /bin/sh, its own session."""

    def __init__(self, checkout: Path, node: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
        env.update(
            SYNCOPATE_PROJECT=checkout.name,
            SYNCOPATE_NODE=node,
            SYNCOPATE_VARIABLES=str(checkout / variables.FILE_NAME),
            SYNCOPATE_PYTHON=sys.executable,
        )
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", resolve(checkout, None)],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))

    async def printed(self, text: str) -> list[str]:
        async def found() -> list[str]:
            if self.proc.poll() is not None:
                self._reader.join(timeout=10)
            hits = [line for line in self.lines if text in line]
            if not hits and self.proc.poll() is not None:
                raise AssertionError(f"exited ({self.proc.returncode}): {self.lines}")
            return hits

        return await wait_for(found, timeout=15, interval=0.05, what=repr(text))

    def stop(self) -> int:
        """SIGTERM to the whole group, as the node stops a project; its exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise
        self._reader.join(timeout=10)
        return code


def checkout(name: str, tmp_path: Path) -> Path:
    """A copy of the example, as a node's checkout of it would be."""
    ignore = shutil.ignore_patterns(*IGNORED)
    return Path(shutil.copytree(EXAMPLES_DIR / name, tmp_path / name, ignore=ignore))


def test_examples_are_where_the_source_tree_says() -> None:
    names = [example.name for example in find_examples()]
    assert {"counter", "ticker"} <= set(names)
    root = Path(__file__).resolve().parents[2]
    assert (root / "examples").resolve() == EXAMPLES_DIR


@pytest.mark.parametrize("name", [example.name for example in find_examples()])
def test_each_example_has_a_readme_and_a_run_command(name: str) -> None:
    example = EXAMPLES_DIR / name
    assert (example / "README.md").is_file()
    assert resolve(example, None)


def test_counter_uses_syncopate_toml_and_ticker_run_sh() -> None:
    assert resolve(EXAMPLES_DIR / "counter", None).endswith("counter.py")
    assert resolve(EXAMPLES_DIR / "ticker", None) == "./run.sh"


async def test_counter_keeps_its_count_across_a_restart(tmp_path: Path) -> None:
    folder = checkout("counter", tmp_path)
    first = Example(folder, "pi-1")
    try:
        await first.printed("count 3 on pi-1")
    finally:
        assert first.stop() == 0
    stopped_at = int(first.lines[-1].removeprefix("counter: stopped at ").split()[0])
    assert variables.load(folder / variables.FILE_NAME)["count"] == stopped_at

    second = Example(folder, "pi-2")
    try:
        await second.printed(f"count {stopped_at + 2} on pi-2")
    finally:
        assert second.stop() == 0
    assert second.lines[0] == (f"counter: starting at {stopped_at} on pi-2 (has run on pi-1, pi-2)")
    saved = variables.load(folder / variables.FILE_NAME)
    assert saved["nodes"] == ["pi-1", "pi-2"] and saved["count"] > stopped_at


async def test_ticker_writes_a_line_every_second_and_stops_at_sigterm(tmp_path: Path) -> None:
    ticker = Example(checkout("ticker", tmp_path), "pi-1")
    try:
        await ticker.printed("tick 2, up")
    finally:
        # Not its exit status: that is /bin/sh's, which dash gives as killed by the SIGTERM.
        ticker.stop()
    assert ticker.lines[0] == "ticker: starting on pi-1"
    assert " tick 1, up " in ticker.lines[1] and ticker.lines[1].endswith("s on pi-1")
    assert ticker.lines[-1].startswith("ticker: stopped after ")


async def test_sensor_carries_its_samples_across_a_restart(tmp_path: Path) -> None:
    folder = checkout("sensor", tmp_path)
    first = Example(folder, "pi-1")
    try:
        await first.printed("load ")
    finally:
        assert first.stop() == 0
    saved = variables.load(folder / variables.FILE_NAME)
    assert saved["samples"] >= 1 and saved["peak"]["node"] == "pi-1"

    second = Example(folder, "pi-2")
    try:
        await second.printed("load ")
    finally:
        assert second.stop() == 0
    assert variables.load(folder / variables.FILE_NAME)["samples"] > saved["samples"]
