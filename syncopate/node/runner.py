"""One project's lifecycle on this node: its steps, one at a time, and its status.

The agent (`agent.py`) keeps one `ProjectRunner` per project name and hands it work: bring the
project up, stop it, restart it, fetch its repository, retire or remove it. Each of these is a
*step*, and a project's steps run strictly one after another (the chain), whatever `Local`
(epoch) each is for: a new epoch's start waits for the old one's stop, a removal for a retire.
When the last step of the chain ends, the runner converges again on the project's current
`Local`, since the wish may have changed meanwhile.

The runner keeps the chain, the status and the small steps (stop, restart, retire, remove, roll
back); the bring-up step is in bring_up.py (checkout, variables, command, process), the git side
of the steps in git_steps.py (clone, follow a changed URL or ref, sync a new commit), the
rollout's state in rollout_keeper.py, the watch of a running process (health, memory) in
watch.py.

The invariants the faults tests hold us to:
- one step at a time per project (`_spawn`);
- no step starts a replaced epoch, a project the manager wants stopped, an exclusive project
  past its lease, or anything once the agent leaves (`may_run`, checked right before a start);
- a crash loop fails the project until start, restart or a new commit (`process_changed`),
  unless it is a new commit on trial: then the last good commit runs again (rollout_keeper.py);
- a step that raises fails the project and retries it after the STEP_RETRY backoff.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from syncopate.node import bring_up, git_steps, probes, report
from syncopate.node.backoff import NEVER, BackoffPolicy, restart_delay
from syncopate.node.project import Local, StartedEpochs
from syncopate.node.rollout_keeper import RolloutKeeper
from syncopate.node.settings import AgentSettings
from syncopate.node.supervisor import ProjectProcess
from syncopate.node.watch import ProjectWatch
from syncopate.states import ProjectStatus, check_project_transition, project_transition_allowed

log = logging.getLogger("syncopate.node")

DISK_PROBE_EVERY = 60.0  # seconds; SD cards are slow
# A step that raised (a full disk, a permission error, git gone) is retried after this backoff:
# never at once, so a lasting fault cannot make the agent spin.
STEP_RETRY = BackoffPolicy(first=1.0, factor=2.0, cap=60.0)

Step = Callable[[Local], Coroutine[Any, Any, None]]


class RunnerHost(Protocol):
    """What a runner asks of its agent."""

    settings: AgentSettings
    clock: Callable[[], float]
    name: str  # the node's name, for the project's environment
    leaving: bool  # set when the agent leaves: nothing starts any more
    steps: dict[asyncio.Task[None], str]  # every step under way, of every project
    epochs: StartedEpochs

    def current(self, project: str) -> Local | None:
        """The `Local` the node holds for `project` now (None once it is not assigned here)."""

    def converge(self, local: Local) -> None:
        """Converge `local` through the agent's runner of its project."""

    def report_soon(self, project: str | None = None) -> None:
        """Something changed in `project` (None: in any): send its report now rather than
        at the next interval."""

    def runner_idle(self, runner: ProjectRunner) -> None:
        """`runner` has no step under way and its project is not assigned here."""


class ProjectRunner:
    """The steps of project `name` on this node, one at a time."""

    def __init__(self, name: str, host: RunnerHost) -> None:
        self.name = name
        self.host = host
        self.settings = host.settings
        self.checkout = host.settings.checkout(name)
        self._last: asyncio.Task[None] | None = None  # the chain's last step
        self._watch: ProjectWatch | None = None  # health and memory limit of its process
        self.rollout = RolloutKeeper(self)  # the last good commit, the bad one, the trial

    # the chain --------------------------------------------------------------------------------
    def busy(self) -> bool:
        """True while a step of this project runs or waits for its turn."""
        return self._last is not None and not self._last.done()

    def converge(self, local: Local) -> None:
        """Start the step that brings `local` closer to what the manager wants, if any."""
        if self.host.leaving or self.busy():
            return  # the chain's last step converges again when it ends
        if local.desired == "running" and not local.active and not local.lease_stopped:
            if local.status is ProjectStatus.FAILED and self.host.clock() < local.retry_at:
                return
            self._spawn(local, self._bring_up)
        elif local.desired == "stopped" and local.active:
            self._spawn(local, self._stop)
        elif local.desired == "stopped" and local.status not in (
            ProjectStatus.STOPPED,
            ProjectStatus.FAILED,
        ):
            self.set_status(local, ProjectStatus.STOPPED)

    def stop(self, local: Local) -> asyncio.Task[None]:
        return self._spawn(local, self._stop)

    def restart(self, local: Local) -> asyncio.Task[None]:
        return self._spawn(local, self._restart)

    def retire(self, local: Local) -> asyncio.Task[None]:
        return self._spawn(local, self._retire)

    def remove(self, local: Local) -> asyncio.Task[None]:
        return self._spawn(local, self._remove)

    def sync(self, local: Local) -> asyncio.Task[None]:
        return self._spawn(local, self._sync)

    def roll_back(self, local: Local) -> asyncio.Task[None]:
        return self._spawn(local, self._roll_back)

    async def stop_now(self, local: Local) -> None:
        """Stop `local` outside the chain: the agent leaving, once every step has ended."""
        await self._stop(local)

    def _spawn(self, local: Local, step: Step) -> asyncio.Task[None]:
        """Run `step` for `local` once every earlier step of the same project has ended."""
        previous = self._last

        async def run() -> None:
            if previous is not None and not previous.done():
                # wait(), not await: the earlier step's failure is its own; our cancel is ours.
                await asyncio.wait([previous])
            said = _said(local)
            try:
                await step(local)
            except Exception as exc:
                self._step_failed(local, step.__name__, exc)
            # A step may have changed what the report says; the periodic fetch that found
            # nothing new did not, and its report waits for the interval (on the poll).
            if step != self._sync or _said(local) != said:
                self.host.report_soon(self.name)
            if self._last is asyncio.current_task():
                self._last = None
                # The project's current Local may be a successor (a new epoch, a return after
                # a refusal): the wish may have changed while this step ran.
                current = self.host.current(self.name)
                if current is not None:
                    self.converge(current)
                else:
                    self.host.runner_idle(self)

        task = asyncio.create_task(run(), name=f"{step.__name__} {self.name}")
        self._last = task
        self.host.steps[task] = step.__name__

        def ended(task: asyncio.Task[None]) -> None:
            self.host.steps.pop(task, None)
            if self._last is task:
                self._last = None  # cancelled before its end

        task.add_done_callback(ended)
        return task

    # status and failures ----------------------------------------------------------------------
    def _step_failed(self, local: Local, step: str, exc: Exception) -> None:
        """A step raised: the project is failed with the reason, retried after a backoff."""
        reason = f"{step.lstrip('_').replace('_', ' ')} failed: {_describe_error(exc)}"
        # An OSError is the machine's (a full disk, a permission): one line. Anything else is
        # a bug of ours, worth its traceback.
        log.error("%s: %s", local.name, reason, exc_info=None if isinstance(exc, OSError) else exc)
        delay = restart_delay(STEP_RETRY, local.step_failures)
        local.step_failures += 1
        if local.active:
            # Its process runs on (or is being restarted): calling it failed would be untrue.
            local.reason = reason
            self._retry_later(local, delay)
        else:
            self.fail(local, reason, retry_in=delay)

    def fail(self, local: Local, reason: str, retry_in: float) -> None:
        """`local` is failed with `reason`, tried again in `retry_in` seconds (NEVER: not until
        a start, a restart or a new commit)."""
        log.warning("%s: %s", local.name, reason)
        self.set_status(local, ProjectStatus.FAILED, reason)
        self._retry_later(local, retry_in)

    def _retry_later(self, local: Local, delay: float) -> None:
        local.retry_at = self.host.clock() + delay
        if delay == NEVER:
            return

        def retry() -> None:
            if self.is_current(local):
                self.host.converge(local)

        asyncio.get_running_loop().call_later(delay, retry)

    def set_status(self, local: Local, status: ProjectStatus, reason: str | None = None) -> None:
        """The one way a project's status changes here: through the table in states.py.

        Running after a rollback shows as rolled-back."""
        status, reason = self.rollout.shown(status, reason)
        check_project_transition(local.name, local.status, status)
        local.status = status
        if reason is not None:
            local.reason = reason
        self.host.report_soon(self.name)

    def process_changed(self, local: Local) -> None:
        """The supervisor's status changed: mirror it, and give up after a crash loop."""
        process = local.process
        if process is not None and process.status != local.status:
            if process.status is ProjectStatus.FAILED:
                reason = self.rollout.crash_looped(local, process.reason)
                if reason is not None:  # None: a new commit rolled back
                    self.fail(local, reason, retry_in=NEVER)
            else:
                keep = process.status is not ProjectStatus.STARTING
                self.set_status(local, process.status, None if keep else "")
        if self._watch is not None and self._watch.process is process:
            self._watch.changed()
        self.host.report_soon(self.name)

    def is_current(self, local: Local) -> bool:
        """True while `local` is what this node holds for its project (not a replaced epoch)."""
        return self.host.current(local.name) is local

    def may_run(self, local: Local) -> bool:
        """Whether a step may start `local`'s process now: checked right before every start,
        since the wish can change while a step clones or waits its turn."""
        return (
            self.is_current(local)
            and local.desired == "running"
            and not local.lease_stopped
            and not self.host.leaving
        )

    # the steps --------------------------------------------------------------------------------
    # Each step keeps its name here: the chain names a failure after it ("bring up failed: ..."),
    # and a leaving agent abandons the `_bring_up` and `_sync` steps under way.
    async def _bring_up(self, local: Local) -> None:
        self._end_watch()  # of a process that is not active any more (or was replaced)
        await bring_up.bring_up(self, local)

    async def _stop(self, local: Local) -> None:
        if local.process is not None:
            await local.process.stop()
            self._end_watch()
        if local.status is not ProjectStatus.FAILED or local.desired == "stopped":
            self.set_status(local, ProjectStatus.STOPPED)

    async def _restart(self, local: Local) -> None:
        if not self.may_run(local):
            return
        started = local.started_with
        if local.process is not None and started is not None and started != local.wanted:
            # Changed in place (`set`): the old process ends, a new one gets the new values.
            await local.process.stop()
            local.process = None
            if started[:2] != (local.url, local.ref):
                await git_steps.follow(local, self.checkout)
        if local.process is None:
            await self._bring_up(local)
        else:
            await self.rollout.before_start(local)
            await local.process.restart()
            self.rollout.started(local)

    async def _roll_back(self, local: Local) -> None:
        """Run the last good commit again: a new one failed within its grace."""
        await self.rollout.check_out_good(local)
        await self._restart(local)

    async def _retire(self, local: Local) -> None:
        """Stop a project this node no longer runs, and close its log."""
        await self._stop(local)
        if local.sink is not None:
            local.sink.close()

    async def _remove(self, local: Local) -> None:
        await self._retire(local)
        if self.host.current(local.name) is None:
            await asyncio.to_thread(shutil.rmtree, self.checkout, True)
            self.rollout.forget()
        self.host.epochs.forget(local.name)

    async def _sync(self, local: Local) -> None:
        if await git_steps.sync(self, local):
            await self._restart(local)  # a new commit, while the old one runs
        # Otherwise the chain's end converges: a failed project is brought up on the new
        # commit; a stopped one starts on it when it is started.

    # health checks and the memory limit (watch.py) ------------------------------------------
    def watch(self, local: Local, process: ProjectProcess) -> None:
        """Watch `process`, `local`'s new one, until it stops: its health check and its
        memory limit, which ask for a restart through `_restart_for`."""
        restart = functools.partial(self._restart_for, local)
        self._watch = ProjectWatch(local, process, self.settings, restart)

    def _end_watch(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def _restart_for(self, local: Local, reason: str, unhealthy: str | None) -> None:
        """The watch asks for a restart: a failed health check (`unhealthy` says why; a new
        commit on trial is rolled back instead) or memory over the limit; through the normal
        restart step."""
        if not self.is_current(local) or not local.active:
            return
        log.warning("%s: %s", local.name, reason)
        if unhealthy is not None and project_transition_allowed(
            local.status, ProjectStatus.UNHEALTHY
        ):
            self.set_status(local, ProjectStatus.UNHEALTHY, reason)
            if self.rollout.unhealthy(local, unhealthy):
                return  # its rollback step restarts it, on the last good commit
        else:
            self.set_status(local, local.status, reason)
        self.restart(local)

    # the report -------------------------------------------------------------------------------
    async def measure_disk(self, local: Local) -> None:
        """Measure the checkout, at most once per DISK_PROBE_EVERY."""
        now = self.host.clock()
        if now - local.disk_at > DISK_PROBE_EVERY:
            # Off the event loop: walking a checkout on an SD card can take a while.
            local.disk_at = now
            local.disk_mb = await asyncio.to_thread(probes.dir_size_mb, self.checkout)

    def build_report(self, local: Local) -> dict[str, Any]:
        """The /node-update body for one project (without name and token)."""
        started = self.host.epochs.get(local.name) == local.epoch
        return report.build(local, self.checkout, started) | self.rollout.report()


def _said(local: Local) -> tuple[object, ...]:
    """What a step can change of a report that must be sent at once when it does."""
    return (local.status, local.commit, local.reason, local.step_failures)


def _describe_error(exc: Exception) -> str:
    """An exception as one line a person can act on (an OSError names its cause and path)."""
    if isinstance(exc, OSError) and exc.strerror:
        # os.replace(tmp, path) names both; the second is the one a person knows.
        path = exc.filename2 or exc.filename
        where = f": {path}" if path else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
