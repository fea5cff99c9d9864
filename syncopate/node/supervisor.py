"""Keep one project's command running, and end what a crashed agent left behind.

    process = ProjectProcess("blink", "./run.sh", checkout, env, LogSink(log_file), record_dir)
    await process.start()   # "starting", then "running"
    ...                     # it exits: "crashed", a backoff, "starting", "running" again
    await process.stop()    # SIGTERM to its group, `grace`, SIGKILL; "stopped"

The command runs as `/bin/sh -c command` in a session of its own, so its whole process group
can be signalled at once and nothing it forks outlives it. While it runs, a record
`<record_dir>/<name>.json` names it; after the agent itself crashed or restarted,
`end_leftover(record_dir, name)` ends that process before the project starts again, so a
project never runs twice on one node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from syncopate.node.backoff import (
    BackoffPolicy,
    failures_after_exit,
    is_crash_loop,
    restart_delay,
)
from syncopate.node.groups import DRAIN_WAIT, KILL_WAIT, end_group, signal_group
from syncopate.node.leftovers import end_all_leftovers, end_leftover, remove_record, write_record
from syncopate.node.logs import LogSink
from syncopate.node.pipes import PipeReader, SinkReader
from syncopate.states import ProjectStatus, check_project_transition

_logger = logging.getLogger(__name__)

__all__ = ["ProjectProcess", "end_all_leftovers", "end_leftover"]

STARTING, RUNNING = ProjectStatus.STARTING, ProjectStatus.RUNNING
CRASHED, STOPPED = ProjectStatus.CRASHED, ProjectStatus.STOPPED
FAILED = ProjectStatus.FAILED
# How many of the last output lines a crash loop's reason quotes, and how much of each.
REASON_LINES = 3
REASON_LINE_CHARS = 200


class ProjectProcess:
    """One project's command, restarted with backoff when it exits, until `stop()`.

    `restarts` counts every start after the first one: crash restarts and `restart()` calls
    alike. `failures_in_a_row` counts exits without a stable run in between. After
    `policy.crash_loop` quick runs in a row the project is "failed" (a crash loop, `reason` says
    so) and stays down until `start()` or `restart()`. Every status change goes through the
    table in `states.py`. `on_change` is called synchronously whenever `status`, `pid`,
    `exit_code` or `restarts` changes.
    """

    def __init__(
        self,
        name: str,
        command: str,
        cwd: Path,
        env: dict[str, str],
        log: LogSink,
        record_dir: Path,
        policy: BackoffPolicy = BackoffPolicy(),
        on_change: Callable[[], None] | None = None,
        grace: float = 5.0,
    ) -> None:
        self.name = name
        self.command = command
        self.cwd = cwd
        self.env = dict(env)
        self.log = log
        self.record_dir = record_dir
        self.policy = policy
        self.on_change = on_change
        self.grace = grace
        self._status = STOPPED
        self._proc: asyncio.subprocess.Process | None = None
        self._output: SinkReader | None = None
        self._pid: int | None = None
        self._exit_code: int | None = None
        self._restarts = 0
        self._failures = 0
        self._quick_runs = 0
        self._reason = ""
        self._started_at: float | None = None
        self._started_monotonic = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stop_asked = asyncio.Event()
        self._lock = asyncio.Lock()
        self._reported: tuple[object, ...] = self._snapshot()

    # what the agent reads ---------------------------------------------------------------------
    @property
    def status(self) -> ProjectStatus:
        """One of "starting", "running", "crashed", "stopped" (a str enum)."""
        return self._status

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def pgid(self) -> int | None:
        # start_new_session makes the child the leader of a new group with its own pid.
        return self._pid

    @property
    def exit_code(self) -> int | None:
        """The last run's exit status; negative for a signal (-9 for SIGKILL)."""
        return self._exit_code

    @property
    def stopping(self) -> bool:
        """True from `stop()` or `restart()` on: its run is ending, though still "running"."""
        return self._stop_asked.is_set()

    @property
    def restarts(self) -> int:
        return self._restarts

    @property
    def started_at(self) -> float | None:
        """`time.time()` when the current run started; None while nothing runs."""
        return self._started_at

    @property
    def failures_in_a_row(self) -> int:
        return self._failures

    @property
    def reason(self) -> str:
        """Why the project is "failed" (a crash loop); empty otherwise."""
        return self._reason

    def ram_mb(self) -> float:
        """Resident memory of the process and all its descendants, in MB; 0 when not running."""
        total = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / (1024 * 1024)

    def tree_pids(self) -> list[int]:
        """The pids of the process and all its descendants; [] when not running."""
        return [proc.pid for proc in self._tree()]

    def _tree(self) -> list[psutil.Process]:
        if self._pid is None:
            return []
        try:
            main = psutil.Process(self._pid)
            return [main, *main.children(recursive=True)]
        except psutil.Error:
            return []

    # what the agent does ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start the command and keep it running until `stop()`; nothing when it runs already.

        Raises OSError when it cannot be spawned at all (its cwd is missing, say); the status
        is "stopped" again then. Later spawn failures count as crashes and are retried.
        """
        async with self._lock:
            await self._begin(count_restart=False)

    async def stop(self) -> None:
        """Stop restarting; SIGTERM the group, SIGKILL it after `grace`; return once it is gone."""
        async with self._lock:
            await self._end()

    async def restart(self) -> None:
        """Stop, then start again; counts in `restarts` and forgives earlier failures."""
        async with self._lock:
            await self._end()
            await self._begin(count_restart=True)

    async def _begin(self, count_restart: bool) -> None:
        if self._task is not None and not self._task.done():
            return
        self._stop_asked = asyncio.Event()
        self._failures = self._quick_runs = 0
        self._reason = ""
        self._set(STARTING)
        try:
            await self._spawn(count_restart)
        except OSError as error:
            self._note(f"could not start: {error}")
            self._set(STOPPED)
            raise
        self._task = asyncio.create_task(self._supervise(), name=f"supervise {self.name}")
        self._task.add_done_callback(self._supervision_ended)

    async def _end(self) -> None:
        task = self._task
        if task is None:
            return
        self._stop_asked.set()
        try:
            # Shielded: a caller that gives up waiting must not leave the group half-stopped.
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # the caller was cancelled, not the supervision
        finally:
            if task.done():
                self._task = None

    # supervision ------------------------------------------------------------------------------
    async def _supervise(self) -> None:
        while self._proc is not None:
            proc = self._proc
            if await self._exited_or_stop_asked(proc):
                await end_group(proc, signal.SIGKILL, 0.0, self._note)  # its leftover children
            else:
                await end_group(proc, signal.SIGTERM, self.grace, self._note)
            await self._finish_run(proc)
            if self._stop_asked.is_set():
                self._note("stopped")
                break
            self._crashed()
            if is_crash_loop(self.policy, self._quick_runs):
                self._give_up()
                return
            if not await self._respawn():
                break
        if self._status is not FAILED:  # a crash loop while respawning
            self._set(STOPPED)

    def _supervision_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            _logger.error("supervision of %s failed", self.name, exc_info=task.exception())
        if self._status in (STOPPED, FAILED):
            return
        # Cancelled (perhaps before it began) or failed: nothing supervises the process any
        # more, and no one could wait for a SIGTERM, so it ends now.
        if self._pid is not None:
            signal_group(self._pid, signal.SIGKILL)
        if self._output is not None:
            self._output.close()
        remove_record(self.record_dir, self.name)
        self._proc, self._output, self._pid, self._started_at = None, None, None, None
        self._set(STOPPED)

    async def _exited_or_stop_asked(self, proc: asyncio.subprocess.Process) -> bool:
        """Wait for the process to exit (True) or for `stop()` (False)."""
        exited = asyncio.ensure_future(proc.wait())
        asked = asyncio.ensure_future(self._stop_asked.wait())
        try:
            await asyncio.wait((exited, asked), return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            asked.cancel()
            await asyncio.gather(exited, asked, return_exceptions=True)
        return not exited.cancelled()

    async def _finish_run(self, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(KILL_WAIT):
                await proc.wait()  # reap it: no zombie
        if self._output is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_WAIT):
                    await asyncio.shield(self._output.done)
            self._output.close()
            self._output = None
        remove_record(self.record_dir, self.name)
        self._proc, self._pid, self._started_at = None, None, None
        self._exit_code = proc.returncode
        # The status change that follows reports the new pid and exit code.

    def _crashed(self) -> None:
        ran_for = time.monotonic() - self._started_monotonic
        self._failures = failures_after_exit(self.policy, self._failures, ran_for)
        self._quick_runs = self._quick_runs + 1 if ran_for < self.policy.stable_after else 0
        self._note(f"exited ({_describe(self._exit_code)}) after {ran_for:.2f}s")
        self._set(CRASHED)

    def _give_up(self) -> None:
        """A crash loop: no more restarts until start() or restart(); say why, with the output."""
        own = [line for line in self.log.tail(50) if not line.startswith("[syncopate]")]
        last = [line[:REASON_LINE_CHARS] for line in own[-REASON_LINES:]]
        self._reason = (
            f"crash loop: {self._quick_runs} runs in a row each ended within "
            f"{self.policy.stable_after:g}s (last: {_describe(self._exit_code)}); not restarted "
            "until start, restart or a new commit"
        )
        if last:
            self._reason += "; last output: " + " | ".join(last)
        self._note(self._reason)
        self._set(FAILED)

    async def _respawn(self) -> bool:
        """Wait out the backoff and spawn again; False when `stop()` came first."""
        while True:
            delay = restart_delay(self.policy, self._failures - 1)
            failures = f"{self._failures} failure{'' if self._failures == 1 else 's'}"
            self._note(f"restarting in {delay:.2f}s ({failures} in a row)")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop_asked.wait()
            if self._stop_asked.is_set():
                self._note("stopped")
                return False
            self._set(STARTING)
            try:
                await self._spawn(count_restart=True)
            except OSError as error:
                self._note(f"could not start: {error}")
                self._failures += 1
                self._quick_runs += 1
                self._set(CRASHED)
                if is_crash_loop(self.policy, self._quick_runs):
                    self._give_up()
                    return False
            else:
                return True

    async def _spawn(self, count_restart: bool) -> None:
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            # Our own pipe rather than asyncio's: in Python 3.11 proc.wait() also waits for its
            # pipes to close, which a child forked into the background would delay forever.
            os.close(write_fd)
        try:
            self._output = await PipeReader.open(read_fd, lambda: SinkReader(self.log))
        except BaseException:
            signal_group(proc.pid, signal.SIGKILL)
            raise
        self._proc, self._pid = proc, proc.pid
        self._started_at, self._started_monotonic = time.time(), time.monotonic()
        if count_restart:
            self._restarts += 1
        self._write_record(proc.pid)
        self._set(RUNNING)

    def _write_record(self, pid: int) -> None:
        try:
            write_record(self.record_dir, self.name, pid, self.command)
        except psutil.Error as error:  # it exited already, and its output says so
            _logger.debug("could not record the process of %s: %s", self.name, error)
        except OSError as error:  # a full disk: it runs unrecorded (its marker finds it later)
            _logger.warning("could not record the process of %s: %s", self.name, error)

    def _note(self, message: str) -> None:
        if not self.log.closed:  # the agent may close the log before the last words
            self.log.note(message)

    # state changes ----------------------------------------------------------------------------
    def _set(self, status: ProjectStatus) -> None:
        check_project_transition(self.name, self._status, status)
        self._status = status
        self._notify()

    def _snapshot(self) -> tuple[object, ...]:
        return (self._status, self._pid, self._exit_code, self._restarts)

    def _notify(self) -> None:
        snapshot = self._snapshot()
        if snapshot == self._reported:
            return
        self._reported = snapshot
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                # The callback's bug must not end the supervision of a running project.
                _logger.exception("on_change of project %s failed", self.name)


def _describe(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"code {code}"
