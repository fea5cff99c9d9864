"""Watching one project's process while it runs: its health check and its memory limit.

    watch = ProjectWatch(local, process, settings, restart=runner_callback)
    watch.changed()     # from the runner whenever the process's status or pid changes
    watch.close()       # once the process stopped (or is replaced)

Both loops follow the process's *runs*: a run is one pid in status running. Checks begin
`interval` after each start, pause while it is stopped, crashed or restarting, and a result that
arrives after its run ended counts for nothing. After `retries` failed checks in a row, or one
measurement over `max-ram`, the watch asks the runner to restart the project (`restart(reason,
unhealthy)`): for a failed health check the runner makes it `unhealthy` first. Why it was
restarted stays in `reason` once it runs again ("restarted: ..."), until its next start. The
check and the limit are read from `Local` at every step: `set` changes them without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from syncopate.node import health, memory_limit
from syncopate.node.health import FailureCount, HealthCheck, HealthConfigError
from syncopate.node.memory_limit import ProjectCgroup
from syncopate.node.project import Local
from syncopate.node.settings import AgentSettings
from syncopate.node.supervisor import ProjectProcess
from syncopate.states import ProjectStatus

log = logging.getLogger("syncopate.node")

# How often a project without a health check looks again whether `set` gave it one.
NO_CHECK_RECHECK = 1.0

Restart = Callable[[str, str | None], None]  # (reason, why it is unhealthy, or None)


class ProjectWatch:
    """The health check and memory limit of `process`, one of `local`'s."""

    def __init__(
        self, local: Local, process: ProjectProcess, settings: AgentSettings, restart: Restart
    ) -> None:
        self.local = local
        self.process = process
        self.settings = settings
        self._restart = restart
        self._probe_every = min(memory_limit.PROBE_EVERY, settings.interval)
        self._wake = asyncio.Event()  # set (and replaced) on every change of the process
        self._pid: int | None = None  # of the run the watch saw start last
        self._after_restart = ""  # the reason to show once it runs again
        self._shown = ""  # that reason, while it is shown: a passing check takes it away
        self._cgroup: ProjectCgroup | None = None
        self._cgroup_limit = 0.0  # what its memory.max says now
        self._oom_seen = 0
        self._tasks = [self._task(self._health_loop()), self._task(self._memory_loop())]

    def _task(self, loop: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(loop, name=f"watch {self.local.name}")
        task.add_done_callback(_log_failure)
        return task

    # what the runner calls ------------------------------------------------------------------------
    def changed(self) -> None:
        """The process's status or pid changed: wake the loops, follow a new run."""
        self._wake.set()
        self._wake = asyncio.Event()
        process = self.process
        if process.status is ProjectStatus.RUNNING and process.pid != self._pid:
            self._pid = process.pid
            self._enter_cgroup(process.pid)
            if self._after_restart and self.local.status is not ProjectStatus.ROLLED_BACK:
                self.local.reason = self._shown = self._after_restart
            self._after_restart = ""  # a rollback's reason (rollout_keeper) says it all
        elif process.status is ProjectStatus.CRASHED:
            self._check_oom_kill()
        elif process.status is ProjectStatus.FAILED:
            self._drop_cgroup()  # a crash loop: nothing runs until it is started again

    def close(self) -> None:
        """Stop watching (the process has stopped): end the loops, remove its cgroup."""
        for task in self._tasks:
            task.cancel()
        self._drop_cgroup()

    def _drop_cgroup(self) -> None:
        if self._cgroup is not None:
            try:
                self._cgroup.remove()
            except OSError as exc:
                log.warning("%s: cannot remove %s: %s", self.local.name, self._cgroup.path, exc)
            self._cgroup, self._cgroup_limit = None, 0.0

    # following the runs ---------------------------------------------------------------------------
    def _run(self) -> int | None:
        """The pid of the current run; None while it is not running or being stopped (a
        restart's stop takes up to the grace, while the project may stop answering)."""
        process = self.process
        if process.status is not ProjectStatus.RUNNING or process.stopping:
            return None
        return process.pid

    async def _next_run(self) -> int:
        while True:
            wake = self._wake
            run = self._run()
            if run is not None:
                return run
            await wake.wait()

    async def _same_run_after(self, run: int, seconds: float) -> bool:
        """Wait `seconds`; False as soon as run `run` ends (a stop, a crash, a restart)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._run() == run:
            wake, left = self._wake, deadline - loop.time()
            if left <= 0:
                return True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if math.isinf(left) else left):
                    await wake.wait()
        return False

    def _ask_restart(self, reason: str, after: str, unhealthy: str | None) -> None:
        self._note(reason)
        self._after_restart = after
        self._restart(reason, unhealthy)

    def _clear_shown(self) -> None:
        """It is well again: the restart's reason goes (the project's log keeps it)."""
        if self._shown and self.local.reason == self._shown:
            self.local.reason = ""
        self._shown = ""

    def _note(self, message: str) -> None:
        if not self.process.log.closed:
            self.process.log.note(message)

    # health ---------------------------------------------------------------------------------------
    async def _health_loop(self) -> None:
        while True:
            run = await self._next_run()
            # Read at each run: a new commit restarts the same process with a new syncopate.toml.
            from_toml = await asyncio.to_thread(self._toml_check)
            failures = FailureCount()
            while True:
                check = health.choose(self.local.health, from_toml)
                wait = check.interval if check is not None else NO_CHECK_RECHECK
                if not await self._same_run_after(run, wait):
                    break
                if check is None:
                    continue
                outcome = await health.run(check, self.process.cwd, self.process.env)
                if self._run() != run:
                    break  # it ended meanwhile: the result is not about this run
                before = failures.in_a_row
                if failures.record(outcome.ok, check.retries):
                    count = failures.in_a_row
                    why = f"health check failed {count} times in a row: {outcome.detail}"
                    self._ask_restart(f"unhealthy: {why}; restarting", f"restarted: {why}", why)
                    await self._same_run_after(run, float("inf"))  # until the restart ends it
                    break
                if not outcome.ok:
                    self._note(
                        f"health check failed ({failures.in_a_row} of {check.retries}): "
                        f"{outcome.detail}"
                    )
                elif before:
                    self._note(f"health check passed again after {before} failed")
                if outcome.ok:
                    self._clear_shown()

    def _toml_check(self) -> HealthCheck | None:
        try:
            return health.from_checkout(self.process.cwd)
        except HealthConfigError as exc:
            self._note(f"syncopate.toml: {exc}; no health check from it")
            return None

    # memory ---------------------------------------------------------------------------------------
    async def _memory_loop(self) -> None:
        said = False
        while True:
            run = await self._next_run()
            while await self._same_run_after(run, self._probe_every):
                limit = self.local.max_ram
                self._follow_limit(limit)
                if limit <= 0:
                    continue
                if not said:
                    said = True
                    self._note(self._how_enforced(limit))
                ram = await asyncio.to_thread(self.process.ram_mb)
                if self._run() == run and self._stable_under(ram, limit):
                    self._clear_shown()
                if self._run() == run and memory_limit.over_limit(ram, limit):
                    why = f"using {ram:.0f} MB, over its limit of {limit:g} MB"
                    self._ask_restart(f"{why}: restarting", f"restarted: {why}", None)
                    await self._same_run_after(run, float("inf"))
                    break

    def _stable_under(self, ram: float, limit: float) -> bool:
        """Under the limit for as long as a crash needs to be forgiven (backoff.stable_after):
        a grower that starts small again has not been cured by its restart yet."""
        started = self.process.started_at
        ran_for = time.time() - started if started is not None else 0.0
        stable = ran_for >= self.settings.backoff.stable_after
        return stable and not memory_limit.over_limit(ram, limit)

    def _how_enforced(self, limit: float) -> str:
        every = f"measured every {self._probe_every:g}s"
        if self._cgroup is not None:
            return f"memory limit {limit:g} MB: cgroup v2 memory.max ({self._cgroup.path}), {every}"
        _, why_not = memory_limit.find_cgroups(self.settings.data_dir)
        return f"memory limit {limit:g} MB: {every} (no cgroup: {why_not or 'see above'})"

    def _follow_limit(self, limit: float) -> None:
        """`set` changed the limit while it runs: the cgroup follows."""
        if limit == self._cgroup_limit or self._pid is None:
            return
        if limit > 0:
            self._enter_cgroup(self._pid)  # made now, or its memory.max changed
        elif self._cgroup is not None:
            try:
                self._cgroup.limit(0)
                self._cgroup_limit = 0
            except OSError as exc:
                self._note(f"cannot change {self._cgroup.path}: {exc}")

    def _enter_cgroup(self, pid: int | None) -> None:
        """Put the run `pid` into the project's cgroup, made (or its memory.max set) first."""
        limit = self.local.max_ram
        if limit <= 0 or pid is None:
            return
        if self._cgroup is None:
            cgroups, _ = memory_limit.find_cgroups(self.settings.data_dir)
            if cgroups is None:
                return
            self._cgroup = cgroups.project(self.local.name)
        try:
            self._cgroup.limit(limit)
            self._cgroup_limit = limit
            self._cgroup.add(list(dict.fromkeys([pid, *self.process.tree_pids()])))
            self._oom_seen = self._cgroup.oom_kills()
        except OSError as exc:
            self._note(f"cannot use cgroup {self._cgroup.path}: {exc}; polling only")
            self._cgroup = None

    def _check_oom_kill(self) -> None:
        if self._cgroup is None:
            return
        kills = self._cgroup.oom_kills()
        if kills > self._oom_seen:
            self._oom_seen = kills
            why = (
                f"killed by the kernel: over its memory limit of {self._cgroup_limit:g} MB "
                "(cgroup v2 memory.max)"
            )
            self._note(why)
            self.local.reason = self._after_restart = why


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())
