"""run_command with real processes: output, exit codes, limits, timeouts, cancellation, env.

Every test marks its processes with a unique token in their environment (inherited by whatever
they fork), so what a command left behind can be found with psutil and asserted gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from syncopate.node import commands
from syncopate.node.commands import (
    TIMEOUT_EXIT_CODE,
    TIMEOUT_RESPONSE,
    CommandResult,
    python_interpreter,
    run_command,
)
from tests.helpers import wait_for

MARK = "SYNCOPATE_TEST_COMMAND_MARK"


@pytest.fixture
def mark(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A token every process of the test's commands carries in its environment."""
    token = uuid.uuid4().hex
    monkeypatch.setenv(MARK, token)
    yield token
    for proc in marked(token):  # a failed test must not leave `sleep 300` running
        with contextlib.suppress(psutil.Error):
            proc.kill()


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path / "scratch" / "command-1"


def marked(token: str) -> list[psutil.Process]:
    """The live processes (not zombies) whose environment carries `token`."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK) == token and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


async def none_left(token: str) -> None:
    async def gone() -> bool:
        return not marked(token)

    await wait_for(gone, timeout=5.0, what=f"the processes marked {token} to end")


async def at_least(token: str, count: int) -> list[psutil.Process]:
    async def running() -> list[psutil.Process]:
        found = marked(token)
        return found if len(found) >= count else []

    return await wait_for(running, timeout=5.0, what=f"{count} processes marked {token}")


async def test_python_stdout_and_stderr_come_back_from_the_scratch_dir(
    mark: str, scratch: Path
) -> None:
    code = "import os, sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\n"
    code += "print(os.getcwd())\n"
    result = await run_command(code, "python", 10, scratch)
    first, second, cwd, end = result.response.split("\n")
    assert (first, second, end) == ("to stdout", "to stderr", "")
    assert Path(cwd).resolve() == scratch.resolve()
    assert (result.exit_code, result.timed_out) == (0, False)
    assert result.duration > 0
    assert not scratch.exists()
    assert scratch.parent.is_dir()  # only the command's own directory is removed


async def test_python_exit_status_and_traceback(mark: str, scratch: Path) -> None:
    result = await run_command("raise SystemExit(3)", "python", 10, scratch)
    assert (result.response, result.exit_code, result.timed_out) == ("", 3, False)

    result = await run_command("print('before')\n1 / 0\n", "python", 10, scratch)
    assert result.exit_code == 1
    assert result.response.startswith("before\nTraceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in result.response
    assert not scratch.exists()


async def test_python_code_larger_than_a_pipe_buffer(mark: str, scratch: Path) -> None:
    code = "x = 1\n" * 50_000 + "print('ran', x)\n"  # 300 KB on stdin
    result = await run_command(code, "python", 10, scratch)
    assert (result.response, result.exit_code) == ("ran 1\n", 0)


async def test_sh_output_and_exit_status(mark: str, scratch: Path) -> None:
    result = await run_command("echo hi; exit 5", "sh", 10, scratch)
    assert result == CommandResult("hi\n", 5, result.duration, False)
    assert not scratch.exists()


async def test_output_past_the_limit_is_counted_not_kept(mark: str, scratch: Path) -> None:
    code = "import sys\nsys.stdout.write('x' * 100_000)\nsys.stdout.flush()\n"
    code += "print('end', file=sys.stderr)\n"
    result = await run_command(code, "python", 10, scratch, output_limit=1000)
    assert (result.exit_code, result.timed_out) == (0, False)  # never blocked on the pipe
    marker = "\n[syncopate] output truncated: 99004 more bytes not kept"
    assert result.response == "x" * 1000 + marker


async def test_the_limit_counts_characters_and_the_dropped_part_in_bytes(
    mark: str, scratch: Path
) -> None:
    result = await run_command("print('é' * 10)", "python", 10, scratch, output_limit=4)
    # 4 of 10 two-byte characters kept; 6 characters and the newline dropped.
    assert result.response == "éééé\n[syncopate] output truncated: 13 more bytes not kept"


async def test_timeout_ends_the_whole_group(mark: str, scratch: Path) -> None:
    task = asyncio.create_task(run_command("sleep 300 & sleep 300", "sh", 1.0, scratch, grace=0.2))
    # Both sleeps (a shell that does not exec its last command is a third).
    await at_least(mark, 2)
    result = await task
    assert result == CommandResult(TIMEOUT_RESPONSE, TIMEOUT_EXIT_CODE, result.duration, True)
    assert 1.0 <= result.duration < 5
    await none_left(mark)
    assert not scratch.exists()


async def test_timeout_escalates_to_sigkill(mark: str, scratch: Path) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ignoring', flush=True)\ntime.sleep(300)\n"
    result = await run_command(code, "python", 0.5, scratch, grace=0.2)
    assert (result.response, result.exit_code, result.timed_out) == ("TIMEOUT", 124, True)
    await none_left(mark)


async def test_a_background_child_does_not_hold_the_command(
    mark: str, scratch: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "background.pid"
    started = time.monotonic()
    result = await run_command(f"sleep 300 & echo $! > {pid_file}; echo done", "sh", 60, scratch)
    assert time.monotonic() - started < 5
    assert (result.response, result.exit_code, result.timed_out) == ("done\n", 0, False)
    background = int(pid_file.read_text(encoding="ascii"))
    await none_left(mark)
    assert not any(proc.pid == background for proc in marked(mark))


async def test_cancelling_kills_the_group_and_removes_scratch(mark: str, scratch: Path) -> None:
    task = asyncio.create_task(run_command("sleep 300 & sleep 300", "sh", 60, scratch))
    await at_least(mark, 2)
    assert scratch.is_dir()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await none_left(mark)
    assert not scratch.exists()


async def test_an_unknown_interpreter_is_refused(mark: str, scratch: Path) -> None:
    with pytest.raises(ValueError, match="ruby"):
        await run_command("puts 1", "ruby", 10, scratch)
    assert not scratch.exists()


async def test_an_interpreter_that_cannot_start_gives_a_result(
    mark: str, scratch: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-python3")
    monkeypatch.setattr(commands, "python_interpreter", lambda: missing)
    result = await run_command("print(1)", "python", 10, scratch)
    assert result.response.startswith(f"cannot start {missing}: ")
    assert (result.exit_code, result.timed_out) == (None, False)
    assert not scratch.exists()


def test_python_interpreter_is_an_executable() -> None:
    path = python_interpreter()
    assert os.path.isabs(path)
    assert os.path.isfile(path) and os.access(path, os.X_OK)


async def test_the_agent_secrets_are_not_passed_on(
    mark: str, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCOPATE_TOKEN", "node-token")
    monkeypatch.setenv("SYNCOPATE_PASSWORD", "join-password")
    code = (
        "import os\nprint(os.environ.get('SYNCOPATE_TOKEN'), os.environ.get('SYNCOPATE_PASSWORD'))"
    )
    result = await run_command(code, "python", 10, scratch)
    assert result.response == "None None\n"
    assert os.environ["SYNCOPATE_TOKEN"] == "node-token"  # the agent's own stays


async def test_an_explicit_env_is_used_as_given(mark: str, scratch: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), MARK: mark, "GREETING": "hello"}
    result = await run_command('echo "$GREETING"', "sh", 10, scratch, env=env)
    assert result.response == "hello\n"
