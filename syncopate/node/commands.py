"""Run one command-channel program on a node and collect what it printed.

    result = await run_command("print(42)", "python", timeout=10, scratch=work / "cmd-17")
    result.response, result.exit_code   # "42\n", 0

This module owns a command's process from start to end: the interpreter it runs under, its
scratch directory (created as its cwd, removed afterwards), its output (stdout and stderr in
one pipe, kept up to a limit) and its process group (ended at the timeout, on cancellation,
and after the main process exits, so a command never leaves a process behind). It knows
nothing of the manager or of the command states; the agent reports the `CommandResult`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from syncopate.node.groups import (
    DRAIN_WAIT,
    KILL_WAIT,
    end_group,
    group_gone_within,
    signal_group,
)
from syncopate.node.pipes import PipeReader

__all__ = [
    "OUTPUT_LIMIT",
    "TIMEOUT_EXIT_CODE",
    "TIMEOUT_RESPONSE",
    "CommandResult",
    "command_environment",
    "python_interpreter",
    "run_command",
]

TIMEOUT_RESPONSE = "TIMEOUT"
TIMEOUT_EXIT_CODE = 124  # what coreutils' timeout(1) exits with
OUTPUT_LIMIT = 64 * 1024  # characters of response kept
INTERPRETERS = ("python", "sh")
_SECRETS = ("SYNCOPATE_PASSWORD", "SYNCOPATE_TOKEN")


@dataclass(frozen=True)
class CommandResult:
    """What a command left: its output (or "TIMEOUT"), exit status and run time."""

    response: str
    exit_code: int | None  # negative N when killed by signal N; None when it never started
    duration: float
    timed_out: bool


def python_interpreter() -> str:
    """`python3` from PATH when there is one, else the agent's own interpreter.

    The board's own Python has its hardware libraries (GPIO, I2C) installed; the agent's may be
    a virtualenv without them.
    """
    return shutil.which("python3") or sys.executable


def command_environment() -> dict[str, str]:
    """The agent's environment without its secrets, for a command to run in."""
    env = {key: value for key, value in os.environ.items() if key not in _SECRETS}
    # Unbuffered, so stdout and stderr interleave in the response as a terminal shows them.
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def run_command(
    code: str,
    interpreter: str,
    timeout: float,
    scratch: Path,
    *,
    env: dict[str, str] | None = None,
    output_limit: int = OUTPUT_LIMIT,
    grace: float = 1.0,
) -> CommandResult:
    """Run `code` under `interpreter` ("python" or "sh") in `scratch`; never longer than `timeout`.

    Python code goes to the standard input of `python3 -`; shell code runs as `/bin/sh -c code`.
    At the timeout the process group gets SIGTERM, then SIGKILL after `grace` seconds, and the
    result is "TIMEOUT" with exit code 124. `env` None means the agent's environment without
    SYNCOPATE_PASSWORD and SYNCOPATE_TOKEN. A program that cannot be started gives a result
    saying so, with exit code None. `scratch` is removed afterwards in every case. Cancelling
    the caller kills the process group before the cancellation goes on.

    Raises ValueError for an interpreter other than "python" or "sh".
    """
    if interpreter == "python":
        argv, stdin = [python_interpreter(), "-"], code.encode("utf-8")
    elif interpreter == "sh":
        argv, stdin = ["/bin/sh", "-c", code], None
    else:
        raise ValueError(f"unknown interpreter {interpreter!r}: use one of {INTERPRETERS}")
    started = time.monotonic()
    try:
        return await _run(
            argv,
            stdin,
            timeout,
            scratch,
            command_environment() if env is None else env,
            output_limit,
            grace,
            started,
        )
    finally:
        # In a thread: a command may have filled its scratch directory with many files.
        await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)


async def _run(
    argv: list[str],
    stdin: bytes | None,
    timeout: float,
    scratch: Path,
    env: dict[str, str],
    output_limit: int,
    grace: float,
    started: float,
) -> CommandResult:
    try:
        scratch.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return CommandResult(f"cannot create {scratch}: {exc}", None, _since(started), False)
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            cwd=scratch,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        os.close(read_fd)
        return CommandResult(f"cannot start {argv[0]}: {exc}", None, _since(started), False)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        # Our own pipe rather than asyncio's: in Python 3.11 proc.wait() also waits for its
        # pipes to close, which a child left in the background would delay forever.
        os.close(write_fd)
    pgid = proc.pid  # start_new_session: the leader of a new group with its own pid
    output: _Output | None = None
    try:
        output = await PipeReader.open(read_fd, lambda: _Output(output_limit))
        timed_out = not await _exited_in_time(proc, stdin, timeout)
        if timed_out:
            await end_group(proc, signal.SIGTERM if grace > 0 else signal.SIGKILL, grace)
        else:
            # Background children may still be writing; give them a moment, then end them.
            await _wait_done(output, DRAIN_WAIT)
            await end_group(proc, signal.SIGKILL, 0.0)
        # With the group gone the pipe closes, unless a process left the group holding it.
        await _wait_done(output, DRAIN_WAIT)
    except BaseException:
        signal_group(pgid, signal.SIGKILL)
        if proc.stdin is not None:
            proc.stdin.close()
        # Reaped, not a zombie, and its transport closed before the cancellation goes on.
        await group_gone_within(proc, pgid, KILL_WAIT)
        raise
    finally:
        if output is not None:  # else connect() closed the pipe already
            output.close()
    if timed_out:
        return CommandResult(TIMEOUT_RESPONSE, TIMEOUT_EXIT_CODE, _since(started), True)
    return CommandResult(output.text(), proc.returncode, _since(started), False)


async def _exited_in_time(
    proc: asyncio.subprocess.Process, stdin: bytes | None, timeout: float
) -> bool:
    """Feed the program its code and wait for its main process to exit; False at the timeout."""
    try:
        # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation.
        async with asyncio.timeout(timeout):
            if stdin is not None and proc.stdin is not None:
                try:
                    proc.stdin.write(stdin)
                    await proc.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # it exited before reading everything: its exit status tells why
                finally:
                    proc.stdin.close()
            await proc.wait()
    except TimeoutError:
        return False
    return True


async def _wait_done(output: _Output, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await asyncio.shield(output.done)


def _since(started: float) -> float:
    return time.monotonic() - started


class _Output(PipeReader):
    """Reads the program's stdout and stderr (one pipe), keeping the first `limit` characters.

    Everything past the limit is still read, only counted, so the program never blocks on a
    full pipe.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.kept: list[str] = []
        self.kept_chars = 0
        self.dropped_bytes = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def data_received(self, data: bytes) -> None:
        if self.dropped_bytes:
            self.dropped_bytes += len(data)
            return
        state = self.decoder.getstate()
        text = self.decoder.decode(data)
        if self.kept_chars + len(text) <= self.limit:
            self._keep(text)
            return
        # Over the limit within this chunk: find, byte by byte, where the kept part ends, so
        # the count of what was dropped is exact in bytes.
        self.decoder.setstate(state)
        for index in range(len(data)):
            pending = len(self.decoder.getstate()[0])
            piece = self.decoder.decode(data[index : index + 1])
            if self.kept_chars + len(piece) > self.limit:
                self.dropped_bytes = pending + len(data) - index
                return
            self._keep(piece)

    def _keep(self, text: str) -> None:
        if text:
            self.kept.append(text)
            self.kept_chars += len(text)

    def text(self) -> str:
        """What was kept, with a line saying how much was not."""
        if not self.dropped_bytes:
            # A multibyte character cut off at the end of the output becomes U+FFFD.
            pending = len(self.decoder.getstate()[0])
            tail = self.decoder.decode(b"", final=True)
            if self.kept_chars + len(tail) <= self.limit:
                self._keep(tail)
            else:
                self.dropped_bytes = pending
        text = "".join(self.kept)
        if self.dropped_bytes:
            text += f"\n[syncopate] output truncated: {self.dropped_bytes} more bytes not kept"
        return text
