"""The node agent: join, long-poll the manager, make what runs match what it wants, report.

The reconcile step compares each assignment (desired state, epoch, restart counter) with the
local copy and acts on the difference; git and process work happen in per-project tasks so a
slow clone never holds up the others. The agent keeps its projects running when the manager is
unreachable, except exclusive ones, which it stops after the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncopate import __version__, variables
from syncopate.client import ManagerClient
from syncopate.errors import (
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    ProtocolError,
    RequestError,
    SyncopateError,
    Unauthorized,
)
from syncopate.node import commands, git_sync, identity, probes, runcommand
from syncopate.node.backoff import REQUEST_RETRY, BackoffPolicy, delays, jitter, restart_delay
from syncopate.node.leftovers import MARKER, marker_value
from syncopate.node.logs import LogSink
from syncopate.node.supervisor import ProjectProcess, end_all_leftovers
from syncopate.paths import write_private_json
from syncopate.states import ProjectStatus, check_project_transition

log = logging.getLogger("syncopate.node")

DISK_PROBE_EVERY = 60.0  # seconds; SD cards are slow
LOG_TAIL_LINES = 20
LOG_LINES_PER_REPORT = 200
# Of JSON text. The manager takes bodies up to 1 MiB, and a line of 500 emoji is 6 KB of JSON.
LOG_BYTES_PER_REPORT = 256 * 1024
WORST_JSON_BYTES_PER_CHAR = 12  # a character outside the BMP: two \uXXXX escapes
# A step that raised (a full disk, a permission error, git gone) is retried after this backoff:
# never at once, so a lasting fault cannot make the agent spin.
STEP_RETRY = BackoffPolicy(first=1.0, factor=2.0, cap=60.0)
CLONE_RETRY = 30.0  # seconds before a failed clone is tried again
NEVER = float("inf")
# Statuses in which a project's process exists (or is about to be restarted).
ACTIVE = frozenset({ProjectStatus.STARTING, ProjectStatus.RUNNING, ProjectStatus.CRASHED})


@dataclass(frozen=True)
class AgentSettings:
    manager: str
    data_dir: Path
    password: str | None = None
    name: str = ""
    interval: float = 5.0  # seconds between full reports
    sync_interval: float = 60.0  # seconds between git fetches
    poll_wait: float = 20.0  # long-poll hold asked of the manager
    grace: float = 5.0  # SIGTERM to SIGKILL
    ca_file: str | None = None
    fingerprint: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)


@dataclass
class Local:
    """What this node knows and runs of one assigned project."""

    name: str
    url: str
    epoch: int
    ref: str | None = None
    command: str | None = None
    desired: str = "running"
    exclusive: bool = False
    restart: int = 0
    manager_variables: dict[str, Any] = field(default_factory=dict)
    # Every change goes through Agent._set_status (the table in states.py); while a process
    # exists, its status is mirrored here.
    status: ProjectStatus = ProjectStatus.PENDING
    reason: str = ""
    commit: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    variables_error: str = ""
    process: ProjectProcess | None = None
    sink: LogSink | None = None
    log_next: int = 0  # the sink's first line the manager has not acknowledged
    retry_at: float = 0.0  # when a failed project is tried again
    step_failures: int = 0  # steps that raised in a row, for the retry backoff
    disk_mb: float = 0.0
    disk_at: float = -1e9
    lease_stopped: bool = False

    @property
    def active(self) -> bool:
        """True while its process runs or is about to be restarted."""
        return self.process is not None and self.process.status in ACTIVE


def within_budget(lines: list[str], budget: int) -> list[str]:
    """The first of `lines` whose JSON text fits in `budget` bytes (always at least one)."""
    if sum(len(line) for line in lines) * WORST_JSON_BYTES_PER_CHAR <= budget:
        return lines  # the usual case, without encoding anything
    used = 0
    for count, line in enumerate(lines):
        used += len(json.dumps(line)) + 2
        if used > budget:
            return lines[: max(count, 1)]
    return lines


class Agent:
    """One node. `run(stop)` until `stop` is set, then leave cleanly."""

    def __init__(
        self,
        settings: AgentSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.data_dir = settings.data_dir
        self.projects_dir = self.data_dir / "projects"
        self.logs_dir = self.data_dir / "logs"
        self.records_dir = self.data_dir / "running"
        self.client = ManagerClient(
            settings.manager, ca_file=settings.ca_file, fingerprint=settings.fingerprint
        )
        self.name = ""
        self.token = ""
        self.local: dict[str, Local] = {}
        # Projects stopped because the manager refused their report, until a poll says
        # whether they come back here (a reset) or are gone (then their checkout goes too).
        self._retired: dict[str, Local] = {}
        self.lease = 0.0
        self.last_contact = clock()
        self._report_now = asyncio.Event()
        self._steps: dict[asyncio.Task[None], str] = {}  # every project step under way
        # The last step of each project, by name: a project's steps run strictly one after
        # another, each waiting for the one before, whatever Local (epoch) they are for.
        self._chain: dict[str, asyncio.Task[None]] = {}
        # The manager run and sequence number of the last /node-status answer applied: an
        # older answer (held through a partition, say) is dropped.
        self._answer: tuple[str, int] = ("", -1)
        self._leaving = False  # set by _leave: nothing starts any more
        self.commands_dir = self.data_dir / "commands"
        # Command-channel programs under way (or whose response is not sent yet), by id.
        self._commands: dict[int, asyncio.Task[None]] = {}
        self._epochs_file = self.data_dir / "epochs.json"
        self._started_epochs: dict[str, int] = self._load_epochs()

    # identity ---------------------------------------------------------------------------------
    async def join(self) -> None:
        """Use the saved identity for this manager, or join with the password."""
        saved = identity.load(self.data_dir)
        if saved is not None and saved.manager == self.settings.manager:
            self.name, self.token = saved.name, saved.token
            return
        await self._join_with_password()

    async def _join_with_password(self) -> None:
        if not self.settings.password:
            raise SyncopateError(
                "this node has no identity for the manager yet; join with --password"
            )
        storage, ram = probes.capacity(self.data_dir)
        preferred = self.settings.name or (self.name or os.uname().nodename)
        self.name, self.token = await self.client.initialize(
            self.settings.password,
            preferred,
            storage=storage,
            ram=ram,
            labels=self.settings.labels,
            agent_version=__version__,
        )
        identity.save(
            self.data_dir, identity.Identity(self.name, self.token, self.settings.manager)
        )
        log.info("joined %s as %s", self.settings.manager, self.name)

    # the main loop ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Join, then poll, reconcile, report and sync until `stop` is set; then leave."""
        # Scratch directories of commands an earlier agent did not finish.
        await asyncio.to_thread(shutil.rmtree, self.commands_dir, True)
        for folder in (self.projects_dir, self.logs_dir, self.records_dir, self.commands_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # After a crash of the agent itself: end what it had started, then start cleanly.
        ended = await asyncio.to_thread(end_all_leftovers, self.records_dir, self.data_dir)
        for name in ended:
            log.warning("ended %s, left running by an earlier agent", name)
        await self._retrying(self.join, stop)
        if stop.is_set():
            await self.client.close()
            return
        tasks = [
            asyncio.create_task(self._poll_loop(stop)),
            asyncio.create_task(self._report_loop()),
            asyncio.create_task(self._sync_loop()),
            asyncio.create_task(self._lease_loop()),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._leave()

    async def _retrying(self, action: Callable[[], Any], stop: asyncio.Event) -> None:
        retries = delays(REQUEST_RETRY)
        while not stop.is_set():
            try:
                await action()
                return
            except (ConnectionFailed, ProtocolError) as exc:
                delay = next(retries)
                log.warning("%s; retrying in %.1fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(jitter(delay)):
                    await stop.wait()

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        retries = delays(REQUEST_RETRY)
        wait: float | None = None  # the first poll answers at once
        while True:
            sent = self.clock()
            try:
                answer = await self.client.node_status(self.name, self.token, wait=wait)
            except Unauthorized:
                log.warning("the manager no longer knows %s; joining again", self.name)
                await self._retrying(self._join_with_password, stop)
                wait = None
                continue
            except (ConnectionFailed, ProtocolError, RequestError) as exc:
                # Keep running; back off with jitter so a fleet does not stampede a manager.
                delay = next(retries)
                log.warning("poll failed: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(jitter(delay))
                wait = None
                continue
            retries = delays(REQUEST_RETRY)
            # Contact counts from when the request left: the manager saw it no earlier, so the
            # lease here always runs out before the manager's node-timeout there.
            self.last_contact = max(self.last_contact, sent)
            wait = self.settings.poll_wait
            if not self.fresh_answer(answer):
                log.warning("dropped a /node-status answer older than one already applied")
                continue
            try:
                self.lease = float(answer.get("lease") or 0.0)
                self.reconcile(answer.get("projects") or {})
                self.take_commands(answer.get("commands") or [])
            except Exception:
                # An answer this agent cannot read must not end its polling for good.
                log.exception("could not apply the manager's answer; polling again")
                await asyncio.sleep(jitter(REQUEST_RETRY.first))
                wait = None

    def fresh_answer(self, answer: dict[str, Any]) -> bool:
        """False for an answer older than the last one applied (same manager run, lower
        sequence); a manager that does not number its answers is always fresh."""
        run, sequence = answer.get("manager-run"), answer.get("sequence")
        if not isinstance(run, str) or not isinstance(sequence, int):
            return True
        last_run, last_sequence = self._answer
        if run == last_run and sequence <= last_sequence:
            return False
        self._answer = (run, sequence)
        return True

    # reconcile --------------------------------------------------------------------------------
    def reconcile(self, assignments: dict[str, dict[str, Any]]) -> None:
        """Act on the difference between what the manager wants and what runs here."""
        for name in [n for n in self.local if n not in assignments]:
            self._spawn(self.local.pop(name), self._remove)
        for name in [n for n in self._retired if n not in assignments]:
            self._spawn(self._retired.pop(name), self._remove)  # after its retire step
        for name, wanted in assignments.items():
            local = self.local.get(name)
            epoch = int(wanted.get("epoch") or 0)
            url = str(wanted.get("project-url") or "")
            if local is None or local.epoch != epoch or local.url != url:
                restart = int(wanted.get("restart") or 0)
                fresh = Local(name=name, url=url, epoch=epoch, restart=restart)
                # A returning project's retire step is in its chain already; the new copy's
                # steps wait for it, so two copies never overlap.
                self._retired.pop(name, None)
                if local is not None:
                    # A new epoch (reset, or placed here afresh): the old run stops first.
                    self._spawn(local, self._stop)
                    fresh.sink, fresh.log_next = local.sink, local.log_next
                local = fresh
                self.local[name] = local
            local.ref = wanted.get("ref")
            local.command = wanted.get("command")
            local.exclusive = bool(wanted.get("exclusive"))
            local.desired = str(wanted.get("desired") or "running")
            local.manager_variables = dict(wanted.get("persistent-variables") or {})
            restart = int(wanted.get("restart") or 0)
            if restart > local.restart:
                local.restart = restart
                self._forgive(local)  # start or restart clears a failure (a crash loop, say)
                if local.process is not None and local.desired == "running":
                    self._spawn(local, self._restart)
                    continue
            self._converge(local)

    def _busy(self, name: str) -> bool:
        """True while a step of project `name` runs or waits for its turn."""
        task = self._chain.get(name)
        return task is not None and not task.done()

    def _converge(self, local: Local) -> None:
        if self._leaving or self._busy(local.name):
            return  # the chain's last step converges again when it ends
        if local.desired == "running" and not local.active and not local.lease_stopped:
            if local.status is ProjectStatus.FAILED and self.clock() < local.retry_at:
                return
            self._spawn(local, self._bring_up)
        elif local.desired == "stopped" and local.active:
            self._spawn(local, self._stop)
        elif local.desired == "stopped" and local.status not in (
            ProjectStatus.STOPPED,
            ProjectStatus.FAILED,
        ):
            self._set_status(local, ProjectStatus.STOPPED)

    def _spawn(self, local: Local, step: Callable[[Local], Any]) -> None:
        """Run `step` for `local` once every earlier step of the same project has ended."""
        previous = self._chain.get(local.name)

        async def run() -> None:
            if previous is not None and not previous.done():
                # wait(), not await: the earlier step's failure is its own; our cancel is ours.
                await asyncio.wait([previous])
            try:
                await step(local)
            except Exception as exc:
                self._step_failed(local, step.__name__, exc)
            self._report_now.set()
            if self._chain.get(local.name) is asyncio.current_task():
                del self._chain[local.name]
                # The project's current Local may be a successor (a new epoch, a return after
                # a refusal): the wish may have changed while this step ran.
                current = self.local.get(local.name)
                if current is not None:
                    self._converge(current)

        task = asyncio.create_task(run(), name=f"{step.__name__} {local.name}")
        self._chain[local.name] = task
        self._steps[task] = step.__name__

        def ended(task: asyncio.Task[None]) -> None:
            self._steps.pop(task, None)
            if self._chain.get(local.name) is task:
                del self._chain[local.name]  # cancelled before its end

        task.add_done_callback(ended)

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
            self._fail(local, reason, retry_in=delay)

    def _fail(self, local: Local, reason: str, retry_in: float) -> None:
        log.warning("%s: %s", local.name, reason)
        self._set_status(local, ProjectStatus.FAILED, reason)
        self._retry_later(local, retry_in)

    def _retry_later(self, local: Local, delay: float) -> None:
        local.retry_at = self.clock() + delay
        if delay == NEVER:
            return

        def retry() -> None:
            if self.local.get(local.name) is local:
                self._converge(local)

        asyncio.get_running_loop().call_later(delay, retry)

    @staticmethod
    def _forgive(local: Local) -> None:
        """Start, restart or a new commit: a failed project is tried again at once."""
        local.retry_at = 0.0
        local.step_failures = 0

    def _set_status(self, local: Local, status: ProjectStatus, reason: str | None = None) -> None:
        """The one way a project's status changes here: through the table in states.py."""
        check_project_transition(local.name, local.status, status)
        local.status = status
        if reason is not None:
            local.reason = reason
        self._report_now.set()

    def _process_changed(self, local: Local) -> None:
        """The supervisor's status changed: mirror it, and give up after a crash loop."""
        process = local.process
        if process is not None and process.status != local.status:
            if process.status is ProjectStatus.FAILED:
                self._fail(local, process.reason, retry_in=NEVER)
            else:
                keep = process.status is not ProjectStatus.STARTING
                self._set_status(local, process.status, None if keep else "")
        self._report_now.set()

    # project steps ----------------------------------------------------------------------------
    def checkout(self, name: str) -> Path:
        return self.projects_dir / name

    async def _bring_up(self, local: Local) -> None:
        if not self._current(local):
            return  # replaced by a new epoch while it waited: its variables are not ours
        checkout = self.checkout(local.name)
        if not git_sync.is_checkout(checkout):
            self._set_status(local, ProjectStatus.CLONING, "")
            if checkout.exists():
                await asyncio.to_thread(shutil.rmtree, checkout)
            try:
                local.commit = await asyncio.to_thread(
                    git_sync.clone, local.url, local.ref, checkout
                )
            except git_sync.GitError as exc:
                self._fail(local, f"clone failed: {exc}", retry_in=CLONE_RETRY)
                return
        else:
            local.commit = await asyncio.to_thread(git_sync.head_commit, checkout)
        local.disk_at = -1e9  # measure the checkout in the next report, not a minute later
        if self._started_epochs.get(local.name) != local.epoch:
            # Starting under a new epoch: the manager's copy of the variables is the truth.
            variables.save(local.manager_variables, checkout / variables.FILE_NAME)
            local.variables = dict(local.manager_variables)
            self._started_epochs[local.name] = local.epoch
            self._save_epochs()
        elif not local.variables:
            local.variables = dict(local.manager_variables)
        try:
            command = runcommand.resolve(checkout, local.command)
        except runcommand.NoRunCommand as exc:
            self._fail(local, str(exc), retry_in=NEVER)
            return
        if not self._may_run(local):
            self._set_status(local, ProjectStatus.STOPPED)
            return
        if local.sink is None:
            local.sink = LogSink(self.logs_dir / f"{local.name}.log")
        local.process = ProjectProcess(
            local.name,
            command,
            checkout,
            self._environment(local, checkout),
            local.sink,
            self.records_dir,
            policy=self.settings.backoff,
            on_change=functools.partial(self._process_changed, local),
            grace=self.settings.grace,
        )
        self._set_status(local, ProjectStatus.STARTING, "")
        try:
            await local.process.start()
        except OSError as exc:
            self._fail(local, f"cannot start {command!r}: {exc}", retry_in=CLONE_RETRY)
            return
        local.step_failures = 0

    def _environment(self, local: Local, checkout: Path) -> dict[str, str]:
        env = dict(os.environ)
        for key in ("SYNCOPATE_PASSWORD", "SYNCOPATE_TOKEN"):
            env.pop(key, None)
        env.update(
            {
                "SYNCOPATE_PROJECT": local.name,
                "SYNCOPATE_NODE": self.name,
                "SYNCOPATE_VARIABLES": str((checkout / variables.FILE_NAME).resolve()),
                "SYNCOPATE_MANAGER": self.settings.manager,
                # The agent's own interpreter, which can `import syncopate.variables`; the
                # python3 on PATH may be the system's (with the board's GPIO libraries).
                "SYNCOPATE_PYTHON": sys.executable,
                "PYTHONUNBUFFERED": "1",
                # Inherited by everything the project starts: a later agent finds and ends
                # them even if this one dies before it recorded the start.
                MARKER: marker_value(self.data_dir),
            }
        )
        return env

    async def _stop(self, local: Local) -> None:
        if local.process is not None:
            await local.process.stop()
        if local.status is not ProjectStatus.FAILED or local.desired == "stopped":
            self._set_status(local, ProjectStatus.STOPPED)

    async def _restart(self, local: Local) -> None:
        if not self._may_run(local):
            return
        if local.process is None:
            await self._bring_up(local)
        else:
            await local.process.restart()

    def _current(self, local: Local) -> bool:
        """True while `local` is what this node holds for its project (not a replaced epoch)."""
        return self.local.get(local.name) is local

    def _may_run(self, local: Local) -> bool:
        """Whether a step may start `local`'s process now: checked right before every start,
        since the wish can change while a step clones or waits its turn."""
        return (
            self._current(local)
            and local.desired == "running"
            and not local.lease_stopped
            and not self._leaving
        )

    async def _retire(self, local: Local) -> None:
        """Stop a project this node no longer runs, and close its log."""
        await self._stop(local)
        if local.sink is not None:
            local.sink.close()

    async def _remove(self, local: Local) -> None:
        await self._retire(local)
        if local.name not in self.local:
            await asyncio.to_thread(shutil.rmtree, self.checkout(local.name), True)
        self._started_epochs.pop(local.name, None)
        self._save_epochs()

    # reports ----------------------------------------------------------------------------------
    async def _report_loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # arrives as the event is set, and the agent's shutdown would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.interval):
                    await self._report_now.wait()
            self._report_now.clear()
            await asyncio.sleep(0.02)  # coalesce a burst of changes into one round
            for local in list(self.local.values()):
                if local.status is not ProjectStatus.PENDING:  # nothing done yet, nothing to say
                    await self._report(local)

    def _read_variables(self, local: Local) -> None:
        if self._started_epochs.get(local.name) != local.epoch:
            # Not started under this epoch yet (cloning, or its start failed): the file, if
            # any, is an older epoch's, and reporting it would undo a reset or a move.
            local.variables = dict(local.manager_variables)
            return
        path = self.checkout(local.name) / variables.FILE_NAME
        if not path.exists() and local.status in ("cloning", "pending", "failed"):
            return
        try:
            local.variables = variables.load(path)
            local.variables_error = ""
        except variables.VariablesError as exc:
            local.variables_error = f"project.variables: {exc}; reporting the last good copy"
        except OSError as exc:
            local.variables_error = f"project.variables unreadable: {exc}"

    def build_report(self, local: Local) -> dict[str, Any]:
        """The /node-update body for one project (without name and token)."""
        self._read_variables(local)
        process = local.process
        reasons = [r for r in (local.reason, local.variables_error) if r]
        if local.status is not ProjectStatus.PENDING:
            # A project that dies of a full disk says so in its own output only; say it here.
            full = probes.full_disk_reason(self.checkout(local.name))
            if full:
                reasons.append(full)
        if local.sink is not None and local.sink.last_error is not None:
            reasons.append(f"output not written to {local.sink.path}: {local.sink.last_error}")
        report: dict[str, Any] = {
            "project-name": local.name,
            "project-url": local.url,
            "status": local.status.value,
            "disk-usage": round(local.disk_mb, 3),
            "ram-usage": round(process.ram_mb(), 3) if process is not None else 0.0,
            "persistent-variables": local.variables,
            "epoch": local.epoch,
            "commit": local.commit,
            "restarts": process.restarts if process is not None else 0,
            "reason": "; ".join(reasons) or None,
        }
        if process is not None:
            report["pid"] = process.pid if process.status != "stopped" else None
            report["exit-code"] = process.exit_code
        if local.sink is not None:
            report["log-tail"] = local.sink.tail(LOG_TAIL_LINES)
            chunk = local.sink.since(local.log_next, LOG_LINES_PER_REPORT)
            report["log-stream"] = local.sink.stream
            report["log-seq"] = chunk.seq
            report["log-lines"] = within_budget(chunk.lines, LOG_BYTES_PER_REPORT)
        return report

    @staticmethod
    def _acknowledged(local: Local, report: dict[str, Any]) -> None:
        """The manager took this report: its lines need not be sent again."""
        if local.sink is not None and report.get("log-stream") == local.sink.stream:
            sent_up_to = int(report["log-seq"]) + len(report["log-lines"])
            local.log_next = max(local.log_next, sent_up_to)

    async def _report(self, local: Local) -> None:
        now = self.clock()
        if now - local.disk_at > DISK_PROBE_EVERY:
            # Off the event loop: walking a checkout on an SD card can take a while.
            local.disk_at = now
            local.disk_mb = await asyncio.to_thread(probes.dir_size_mb, self.checkout(local.name))
        sent = self.clock()
        report = self.build_report(local)
        try:
            await self.client.node_update(self.name, self.token, report)
            self.last_contact = max(self.last_contact, sent)
            self._acknowledged(local, report)
        except (Forbidden, NotFound, Conflict) as exc:
            # Not ours any more (moved, removed, or reset behind our back): stop this copy.
            log.warning("%s: the manager refused the report (%s); stopping it", local.name, exc)
            if self.local.get(local.name) is local:
                del self.local[local.name]
                self._retired[local.name] = local
                self._spawn(local, self._retire)
        except (ConnectionFailed, ProtocolError, RequestError) as exc:
            log.debug("report for %s failed: %s", local.name, exc)

    # the command channel ----------------------------------------------------------------------
    def take_commands(self, handed: list[dict[str, Any]]) -> None:
        """Start the programs the manager handed out; each runs beside the projects."""
        for item in handed:
            try:
                command_id = int(item["id"])
                code, interpreter = str(item["code"]), str(item.get("interpreter") or "python")
                timeout = float(item.get("timeout") or 30.0)
            except (KeyError, TypeError, ValueError):
                log.warning("ignoring a malformed command from the manager: %.200r", item)
                continue
            if command_id in self._commands:
                continue
            task = asyncio.create_task(self._command(command_id, code, interpreter, timeout))
            self._commands[command_id] = task
            task.add_done_callback(functools.partial(self._command_done, command_id))

    def _command_done(self, command_id: int, _task: asyncio.Task[None]) -> None:
        self._commands.pop(command_id, None)

    async def _command(self, command_id: int, code: str, interpreter: str, timeout: float) -> None:
        """Run one command, then send its response until the manager takes (or refuses) it."""
        log.info("command %d: running (%s, timeout %gs)", command_id, interpreter, timeout)
        started = self.clock()
        try:
            env = commands.command_environment()
            env[MARKER] = marker_value(self.data_dir)  # a later agent ends what it leaves
            result = await commands.run_command(
                code, interpreter, timeout, self.commands_dir / str(command_id), env=env
            )
        except ValueError as exc:  # an interpreter this agent does not know
            result = commands.CommandResult(str(exc), None, self.clock() - started, False)
        except asyncio.CancelledError:
            # The agent is stopping: say so, once, rather than leave the command to time out.
            result = commands.CommandResult(
                "[syncopate] the node agent stopped before the program finished",
                None,
                self.clock() - started,
                False,
            )
            with contextlib.suppress(SyncopateError):
                async with asyncio.timeout(2.0):
                    await self._send_result(command_id, result)
            raise
        for delay in delays(REQUEST_RETRY):
            try:
                await self._send_result(command_id, result)
                return
            except (ConnectionFailed, ProtocolError) as exc:
                log.warning("command %d: response not sent (%s); retrying", command_id, exc)
            except RequestError as exc:
                log.warning("command %d: the manager refused the response: %s", command_id, exc)
                return
            await asyncio.sleep(jitter(delay))

    async def _send_result(self, command_id: int, result: commands.CommandResult) -> None:
        await self.client.node_command_result(
            self.name,
            self.token,
            command_id,
            result.response,
            result.exit_code,
            round(result.duration, 4),
        )

    # git sync ---------------------------------------------------------------------------------
    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sync_interval)
            for local in list(self.local.values()):
                if self._busy(local.name) or not git_sync.is_checkout(self.checkout(local.name)):
                    continue
                # A step of its own, so a fetch never overlaps the project's other steps (a new
                # epoch's start, a removal); one project at a time, so fetches do not pile up.
                self._spawn(local, self._sync)
                await asyncio.wait([self._chain[local.name]])

    async def _sync(self, local: Local) -> None:
        if not self._current(local):
            return
        try:
            commit, changed = await asyncio.to_thread(
                git_sync.update, self.checkout(local.name), local.ref
            )
        except (git_sync.GitError, OSError) as exc:
            log.warning("%s: fetch failed: %s", local.name, exc)
            return
        local.commit = commit
        if not changed:
            return
        log.info("%s: new commit %s", local.name, commit[:12])
        self._forgive(local)  # a new commit is tried even after a crash loop
        if local.process is not None and local.process.status != ProjectStatus.STOPPED:
            await self._restart(local)
        # Otherwise the chain's end converges: a failed project is brought up on the new
        # commit; a stopped one starts on it when it is started.

    # exclusive lease --------------------------------------------------------------------------
    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(0.1 if self.lease <= 0 else min(self.lease / 10, 1.0))
            cut_off = self.lease > 0 and self.clock() - self.last_contact > self.lease
            for local in list(self.local.values()):
                if not local.exclusive:
                    continue
                if cut_off and not local.lease_stopped:
                    log.warning("%s: no manager for the lease; stopping (exclusive)", local.name)
                    local.lease_stopped = True
                    local.reason = "stopped: lost the manager for longer than the lease"
                    self._spawn(local, self._stop)
                elif not cut_off and local.lease_stopped:
                    local.lease_stopped = False
                    local.reason = ""
                    self._converge(local)

    # leaving ----------------------------------------------------------------------------------
    async def _leave(self) -> None:
        """Stop every project, send final reports, tell the manager, close."""
        self._leaving = True  # a step that ends now must not start the next one
        locals_ = list(self.local.values())
        # Running commands are ended (their process groups with them) and say so.
        for task in list(self._commands.values()):
            task.cancel()
        for task in list(self._commands.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # A clone, a fetch or a start under way is abandoned (_stop below ends what it
        # started); stops and removals under way are let finish, so nothing is left running.
        for task, step in list(self._steps.items()):
            if step in ("_bring_up", "_sync"):
                task.cancel()
        await asyncio.gather(*self._steps, return_exceptions=True)
        await asyncio.gather(*(self._stop(local) for local in locals_), return_exceptions=True)
        for local in locals_:
            report = self.build_report(local)
            with contextlib.suppress(SyncopateError):
                await self.client.node_update(self.name, self.token, report)
                self._acknowledged(local, report)
            if local.sink is not None:
                local.sink.close()
        with contextlib.suppress(SyncopateError):
            await self.client.node_leave(self.name, self.token)
        await self.client.close()

    # the epochs at which variables were last written -----------------------------------------
    def _load_epochs(self) -> dict[str, int]:
        try:
            data = json.loads(self._epochs_file.read_text(encoding="utf-8"))
            return {str(k): int(v) for k, v in data.items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def _save_epochs(self) -> None:
        write_private_json(self._epochs_file, dict(self._started_epochs))


def _describe_error(exc: Exception) -> str:
    """An exception as one line a person can act on (an OSError names its cause and path)."""
    if isinstance(exc, OSError) and exc.strerror:
        # os.replace(tmp, path) names both; the second is the one a person knows.
        path = exc.filename2 or exc.filename
        where = f": {path}" if path else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
