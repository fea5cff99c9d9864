"""One project's rollout on this node: the I/O around the pure machine in rollout.py.

The runner (`runner.py`, its bring-up in `bring_up.py`) calls in at a few points: before a start
(`before_start`: a bad commit is not run again, a new one starts its trial), after it
(`started`: the grace timer), when the supervisor gives up on a crash loop (`crash_looped`),
when the health check fails (`unhealthy`), when the manager's `rollout --retry` counter grows
(`retry`), and when its process status is mirrored (`shown`: the good commit running after a
rollback is `rolled-back`). A rollback is a step of the runner's chain
(`ProjectRunner.roll_back`): check out the last good commit, restart. The state is kept in
`<data dir>/rollouts/<project>.json`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from syncopate.node import git_sync, rollout
from syncopate.node.project import Local
from syncopate.node.rollout import Action, Decision, RolloutState
from syncopate.states import ProjectStatus

if TYPE_CHECKING:
    from syncopate.node.runner import ProjectRunner

log = logging.getLogger("syncopate.node")

RECHECK = 0.5  # seconds: the grace ended mid-restart; look again this much later
# The supervisor's crash-loop reason tells a person how to get it going again; after a
# rollback that advice is not the one that applies.
_NOT_RESTARTED = "; not restarted until start, restart or a new commit"


class RolloutKeeper:
    """The rollout state of project `runner.name` on this node, and its grace timer."""

    def __init__(self, runner: ProjectRunner) -> None:
        self.runner = runner
        self.path = runner.settings.rollouts_dir / f"{runner.name}.json"
        self.state = rollout.load(self.path)
        self._pinned = False  # the checkout followed no branch when its commit last started
        self._timer: asyncio.TimerHandle | None = None
        self._pending: list[str] = []  # notes made before the project's log existed

    @property
    def avoid(self) -> str | None:
        """The bad commit a sync must not move the checkout to."""
        return self.state.bad

    # the runner's hooks -----------------------------------------------------------------------
    async def before_start(self, local: Local) -> None:
        """`local.commit` is about to run: check out the good commit instead of a bad one."""
        if local.commit is None:
            return
        checkout = self.runner.checkout
        self._pinned = not await asyncio.to_thread(git_sync.follows_branch, checkout)
        subject = ""
        if local.commit not in (self.state.good, self.state.trial, self.state.bad):
            # A new commit: its note names it by its message too (one git call, only then).
            subject = await asyncio.to_thread(git_sync.subject, checkout, local.commit)
        arrived = rollout.Arrived(local.commit, self._pinned, subject)
        decision = self._step(local, arrived)
        if decision.action is Action.ROLL_BACK and decision.commit is not None:
            await asyncio.to_thread(git_sync.check_out, checkout, decision.commit)
            local.commit = decision.commit

    async def check_out_good(self, local: Local) -> None:
        """The rollback's checkout: move to the last good commit."""
        good = self.state.good
        if good is not None and local.commit != good:
            await asyncio.to_thread(git_sync.check_out, self.runner.checkout, good)
            local.commit = good

    def started(self, local: Local) -> None:
        """Its process started: a commit on trial has `local.grace` seconds to run well."""
        for note in self._pending:
            self._to_sink(local, note)
        self._pending.clear()
        if self.state.trial is not None and self.state.trial == local.commit:
            self._arm(local, local.grace)

    def crash_looped(self, local: Local, reason: str) -> str | None:
        """The supervisor gave up: roll back (None), or the reason the project fails with."""
        if local.commit is None:
            return reason
        why = reason.replace(_NOT_RESTARTED, "")
        decision = self._step(local, rollout.Failed(local.commit, why, self._pinned))
        if decision.action is Action.ROLL_BACK:
            self._roll_back(local, decision)
            return None
        if decision.action is Action.STAY_FAILED:
            return f"{reason}; {decision.reason}"
        return reason

    def unhealthy(self, local: Local, reason: str) -> bool:
        """Its health check failed: a commit on trial is rolled back (True: its rollback step
        restarts it, on the last good commit)."""
        if local.commit is None:
            return False
        why = f"failed its health check: {reason}" if reason else "failed its health check"
        decision = self._step(local, rollout.Failed(local.commit, why, self._pinned))
        if decision.action is Action.ROLL_BACK:
            self._roll_back(local, decision)
            return True
        return False

    def retry(self, local: Local) -> None:
        """The manager's retry counter (`local.rollout_retry`): a grown one tries the bad
        commit again, through a sync of the project."""
        decision = self._step(local, rollout.Retry(local.rollout_retry))
        if decision.action is Action.RUN:
            self.runner.sync(local)

    def shown(self, status: ProjectStatus, reason: str | None) -> tuple[ProjectStatus, str | None]:
        """The status (and reason) to show for `status`: running is rolled-back after a rollback."""
        if status is ProjectStatus.RUNNING and self.state.rolled_back:
            return ProjectStatus.ROLLED_BACK, self.state.reason()
        return status, reason

    def report(self) -> dict[str, Any]:
        """The report's rollout fields."""
        return {
            "good-commit": self.state.good,
            "bad-commit": self.state.bad,
            "bad-reason": self.state.bad_reason or None,
        }

    def forget(self) -> None:
        """The project left this node (its checkout is gone): so is what it knew."""
        self._disarm()
        self.state = RolloutState()
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("%s: cannot remove %s: %s", self.runner.name, self.path, exc)

    # inside -----------------------------------------------------------------------------------
    def _step(self, local: Local, event: rollout.Event) -> Decision:
        before = self.state
        self.state, decision = rollout.step(before, event)
        if self.state.trial is None:
            self._disarm()
        if self.state != before:
            try:
                rollout.save(self.path, self.state)
            except OSError as exc:
                # Kept in memory; a restarted agent would only forget the last good commit.
                log.warning("%s: cannot keep the rollout state: %s", local.name, exc)
        if decision.note and decision.action is Action.RUN and isinstance(event, rollout.Arrived):
            # `new commit X → running`: said once it runs, after the old run's `stopped`.
            log.info("%s: %s", local.name, decision.note)
            self._pending.append(decision.note)
        elif decision.note:
            failed = decision.action is Action.ROLL_BACK
            self._note(local, decision.note, logging.WARNING if failed else logging.INFO)
        return decision

    def _roll_back(self, local: Local, decision: Decision) -> None:
        self.runner.set_status(local, ProjectStatus.ROLLED_BACK, decision.reason)
        self.runner.roll_back(local)

    def _arm(self, local: Local, delay: float) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(delay, self._grace_over, local)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _grace_over(self, local: Local) -> None:
        self._timer = None
        process = local.process
        current = self.runner.host.current(local.name) is local
        if not current or process is None or local.commit is None:
            return
        if process.status is ProjectStatus.RUNNING and local.status is not ProjectStatus.UNHEALTHY:
            self._step(local, rollout.RanWell(local.commit))
            self.runner.host.report_soon(self.runner.name)
        elif process.status in (ProjectStatus.STARTING, ProjectStatus.CRASHED):
            self._arm(local, RECHECK)  # between a crash and its restart: not proven either way
        # Stopped or failed: the trial resumes with the next start.

    def _note(self, local: Local, note: str, level: int) -> None:
        log.log(level, "%s: %s", local.name, note)
        if local.sink is None:
            self._pending.append(note)
        else:
            self._to_sink(local, note)

    @staticmethod
    def _to_sink(local: Local, note: str) -> None:
        if local.sink is not None and not local.sink.closed:
            local.sink.note(note)
