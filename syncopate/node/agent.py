"""The node agent: join, long-poll the manager, make what runs match what it wants, report.

The reconcile step compares each assignment (desired state, epoch, restart counter) with the
local copy (`project.Local`) and hands the difference to the project's runner (`runner.py`),
whose steps (git and process work) run per project, so a slow clone never holds up the others.
Stale poll answers are dropped (`fresh_answer`). The agent keeps its projects running when the
manager is unreachable, except exclusive ones, which it stops after the lease. Commands the
manager hands out go to the command channel (`command_channel.py`). The reports ride on the
long poll when the manager takes them there, else go by /node-update (`reporting.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

from syncopate import __version__
from syncopate.client import ManagerClient
from syncopate.errors import (
    ConnectionFailed,
    PinMismatch,
    ProtocolError,
    RequestError,
    SyncopateError,
    Unauthorized,
)
from syncopate.node import git_sync, identity, probes
from syncopate.node.backoff import REQUEST_RETRY, delays, jitter
from syncopate.node.command_channel import CommandChannel
from syncopate.node.project import Local, StartedEpochs, assigned_environment, assigned_number
from syncopate.node.rejoin import Rejoin
from syncopate.node.reporting import Reporter
from syncopate.node.runner import ProjectRunner
from syncopate.node.settings import AgentSettings
from syncopate.node.supervisor import end_all_leftovers

__all__ = ["Agent", "AgentSettings", "Local"]

log = logging.getLogger("syncopate.node")


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
        # A pin given now wins; else the one kept in node.json at an earlier start.
        self.pin = identity.pin_for(settings.data_dir, settings.manager, settings.fingerprint)
        self.client = ManagerClient(
            settings.manager, ca_file=settings.ca_file, fingerprint=self.pin
        )
        self.name = ""
        self.token = ""
        self.local: dict[str, Local] = {}
        # Projects stopped because the manager refused their report, until a poll says
        # whether they come back here (a reset) or are gone (then their checkout goes too).
        self._retired: dict[str, Local] = {}
        # The runner of each project with a Local here or a step under way, by name.
        self.runners: dict[str, ProjectRunner] = {}
        self.lease = 0.0
        self.last_contact = clock()
        self.steps: dict[asyncio.Task[None], str] = {}  # every project step under way
        # The manager run and sequence number of the last /node-status answer applied: an
        # older answer (held through a partition, say) is dropped.
        self._answer: tuple[str, int] = ("", -1)
        self.leaving = False  # set by _leave: nothing starts any more
        self.commands = CommandChannel(
            self.client,
            lambda: (self.name, self.token),
            self.data_dir,
            settings.commands_dir,
            clock,
        )
        self.epochs = StartedEpochs(settings.epochs_file)
        self.rejoin = Rejoin(
            self._join_with_password if settings.password else None,
            lambda: self.client.node_status(self.name, self.token),
            lambda: self.reconcile({}),
        )
        self.reporter = Reporter(self)  # needs the settings, clock and rejoin above

    # identity ---------------------------------------------------------------------------------
    async def join(self) -> None:
        """Use the saved identity for this manager, or join with the password."""
        saved = identity.load(self.data_dir)
        if saved is not None and saved.manager == self.settings.manager:
            self.name, self.token = saved.name, saved.token
            if self.pin != saved.fingerprint:
                identity.save(self.data_dir, dataclasses.replace(saved, fingerprint=self.pin))
            return
        await self._join_with_password()

    async def _join_with_password(self) -> None:
        if not self.settings.password:
            raise SyncopateError(
                "this node has no identity for the manager yet; join with --token (or --password)"
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
            self.data_dir,
            identity.Identity(self.name, self.token, self.settings.manager, self.pin),
        )
        log.info("joined %s as %s", self.settings.manager, self.name)

    # the main loop ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Join, then poll, reconcile, report and sync until `stop` is set; then leave."""
        settings = self.settings
        # Scratch directories of commands an earlier agent did not finish.
        await asyncio.to_thread(shutil.rmtree, settings.commands_dir, True)
        for folder in (
            settings.projects_dir,
            settings.logs_dir,
            settings.records_dir,
            settings.commands_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        # After a crash of the agent itself: end what it had started, then start cleanly.
        ended = await asyncio.to_thread(end_all_leftovers, settings.records_dir, self.data_dir)
        for name in ended:
            log.warning("ended %s, left running by an earlier agent", name)
        probes.node_metrics()  # the first CPU figure counts from here (it means nothing)
        await self._retrying(self.join, stop)
        if stop.is_set():
            await self.client.close()
            return
        tasks = [
            asyncio.create_task(self._poll_loop(stop)),
            asyncio.create_task(self.reporter.round_loop()),
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
                if isinstance(exc, PinMismatch) and not self.name:
                    raise  # the first join: a wrong pin is a mistake to fix, not to wait out
                delay = next(retries)
                log.warning("%s; retrying in %.1fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(jitter(delay)):
                    await stop.wait()

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        retries = delays(REQUEST_RETRY)
        wait: float | None = None  # the first poll answers at once
        while True:
            reports = await self.reporter.for_poll()
            sent = self.clock()
            try:
                answer = await self.client.node_status(
                    self.name,
                    self.token,
                    wait=wait,
                    metrics=probes.node_metrics(),
                    reports=reports,
                )
            except Unauthorized as exc:
                self.reporter.poll_failed()
                await self.rejoin.recover(stop, f"the manager no longer knows {self.name} ({exc})")
                wait = None
                continue
            except (ConnectionFailed, ProtocolError, RequestError) as exc:
                self.reporter.poll_failed()
                # Keep running; back off with jitter so a fleet does not stampede a manager.
                delay = max(next(retries), getattr(exc, "retry_after", 0.0))
                log.warning("poll failed: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(jitter(delay))
                wait = None
                continue
            retries = delays(REQUEST_RETRY)
            self.rejoin.refused = False  # a report refused meanwhile: the token works after all
            # Contact counts from when the request left: the manager saw it no earlier, so the
            # lease here always runs out before the manager's node-timeout there.
            self.last_contact = max(self.last_contact, sent)
            # Even a stale answer's manager took the reports (before its hold).
            self.reporter.poll_answered(answer, sent)
            wait = self.reporter.polls.wait(self.settings.poll_wait)
            if not self.fresh_answer(answer):
                log.warning("dropped a /node-status answer older than one already applied")
                continue
            try:
                self.lease = float(answer.get("lease") or 0.0)
                self.reconcile(answer.get("projects") or {})
                self.commands.take(answer.get("commands") or [])
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
            self._runner(name).remove(self.local.pop(name))
        for name in [n for n in self._retired if n not in assignments]:
            self._runner(name).remove(self._retired.pop(name))  # after its retire step
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
                    self._runner(name).stop(local)
                    fresh.sink, fresh.log_next = local.sink, local.log_next
                local = fresh
                self.local[name] = local
            local.ref = wanted.get("ref")
            local.command = wanted.get("command")
            local.exclusive = bool(wanted.get("exclusive"))
            local.desired = str(wanted.get("desired") or "running")
            local.manager_variables = dict(wanted.get("persistent-variables") or {})
            local.env = assigned_environment(wanted)
            health = wanted.get("health")
            local.health = dict(health) if isinstance(health, dict) else None
            local.grace = assigned_number(wanted.get("grace"), 60.0)
            local.max_ram = assigned_number(wanted.get("max-ram"), 0.0)
            local.rollout_retry = int(assigned_number(wanted.get("rollout-retry"), 0.0))
            self._runner(name).rollout.retry(local)  # a grown counter tries the bad commit
            restart = int(wanted.get("restart") or 0)
            if restart > local.restart:
                local.restart = restart
                local.forgive()  # start or restart clears a failure (a crash loop, say)
                if local.process is not None and local.desired == "running":
                    self._runner(name).restart(local)
                    continue
            self.converge(local)

    # what the runners ask of the agent (runner.RunnerHost) ------------------------------------
    def _runner(self, name: str) -> ProjectRunner:
        runner = self.runners.get(name)
        if runner is None:
            runner = self.runners[name] = ProjectRunner(name, self)
        return runner

    def current(self, project: str) -> Local | None:
        return self.local.get(project)

    def converge(self, local: Local) -> None:
        self._runner(local.name).converge(local)

    def report_soon(self, project: str | None = None) -> None:
        self.reporter.report_soon(project)

    def runner_idle(self, runner: ProjectRunner) -> None:
        # Idle, it holds nothing: a later step of the project starts a new chain either way.
        if self.runners.get(runner.name) is runner and runner.name not in self.local:
            del self.runners[runner.name]

    # reports: reporting.py --------------------------------------------------------------------
    async def send_report(self, local: Local) -> None:
        """Report one project by /node-update; a refusal stops this copy of it."""
        await self.reporter.send_report(local)

    # git sync ---------------------------------------------------------------------------------
    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sync_interval)
            for local in list(self.local.values()):
                runner = self._runner(local.name)
                if runner.busy() or not git_sync.is_checkout(runner.checkout):
                    continue
                # A step of its own, so a fetch never overlaps the project's other steps (a new
                # epoch's start, a removal); one project at a time, so fetches do not pile up.
                await asyncio.wait([runner.sync(local)])

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
                    self._runner(local.name).stop(local)
                elif not cut_off and local.lease_stopped:
                    local.lease_stopped = False
                    local.reason = ""
                    self.converge(local)

    # leaving ----------------------------------------------------------------------------------
    async def _leave(self) -> None:
        """Stop every project, send final reports, tell the manager, close."""
        self.leaving = True  # a step that ends now must not start the next one
        locals_ = list(self.local.values())
        # Running commands are ended (their process groups with them) and say so.
        await self.commands.end_all()
        # A clone, a fetch or a start under way is abandoned (stop_now below ends what it
        # started); stops and removals under way are let finish, so nothing is left running.
        for task, step in list(self.steps.items()):
            if step in ("_bring_up", "_sync"):
                task.cancel()
        await asyncio.gather(*self.steps, return_exceptions=True)
        runners = [self._runner(local.name) for local in locals_]
        await asyncio.gather(
            *(runner.stop_now(local) for runner, local in zip(runners, locals_, strict=True)),
            return_exceptions=True,
        )
        for runner, local in zip(runners, locals_, strict=True):
            report = runner.build_report(local)
            with contextlib.suppress(SyncopateError):
                if not self.rejoin.refused:  # a refused token is not sent again: see rejoin.py
                    await self.client.node_update(self.name, self.token, report)
                    local.acknowledged(report)
            if local.sink is not None:
                local.sink.close()
        with contextlib.suppress(SyncopateError):
            if not self.rejoin.refused:
                await self.client.node_leave(self.name, self.token)
        await self.client.close()
