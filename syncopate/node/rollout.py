"""Rollout with automatic rollback (DESIGN §12): which commit a node runs, as a pure machine.

    state, decision = step(state, Arrived(new_sha))        # run it, on trial for the grace
    state, decision = step(state, Failed(new_sha, "crash loop: ..."))
    decision.action is Action.ROLL_BACK                     # run decision.commit (the last good)

Events: a commit is about to run (fetched, or the checkout started), it ran well for its grace,
it failed within the grace (a crash loop, a failed health check), or the controller asked to
try the bad commit again (`rollout --retry` grew the counter). Decisions: run a commit (on
trial unless it is the last good one), roll back to the last good one, stay failed (nothing to
roll back to, or the commit was pinned with --ref: a pin is a wish, not a suggestion), or
nothing (the failure is an ordinary one, handled as before).

A bad commit is avoided until a different commit arrives or the retry counter grows. The state
is one per project on a node, kept in a small JSON file under the agent's data dir (`load`,
`save`), so a restarted agent still knows its last good commit and the bad one. Stdlib only;
those two functions are its only I/O. tests/unit/test_rollout.py holds its table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from syncopate.paths import write_private_json

SHORT = 7  # characters of a sha in the lines people read
# A health check's output can be long; the report's reason must stay within the manager's limit.
MAX_WHY = 1000
MAX_SUBJECT = 200  # characters of a commit's subject in its note


def short(commit: str | None) -> str:
    return commit[:SHORT] if commit else "-"


@dataclass(frozen=True)
class RolloutState:
    """What a node knows of one project's commits."""

    good: str | None = None  # the last commit that ran well for its grace
    bad: str | None = None  # the commit rolled back from: not run again until ...
    bad_reason: str = ""  # ... a different commit arrives or the retry counter grows; why
    retry_seen: int = 0  # the `rollout --retry` counter as last seen
    trial: str | None = None  # the commit running on trial (not yet good)

    @property
    def rolled_back(self) -> bool:
        """True while the last good commit runs in place of a bad one."""
        return self.bad is not None

    def reason(self) -> str:
        """The status reason while rolled back: `rolled back to GOOD: BAD why`."""
        if self.bad is None:
            return ""
        return f"rolled back to {short(self.good)}: {short(self.bad)} {self.bad_reason}"


# events ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arrived:
    """`commit` is about to run: fetched by a sync, or checked out when the project starts.
    `pinned`: the project's --ref names a tag or a commit (the checkout follows no branch).
    `subject`: the first line of its message, for the note of a new commit ("": not known)."""

    commit: str
    pinned: bool = False
    subject: str = ""


@dataclass(frozen=True)
class RanWell:
    """`commit` ran for its grace without a crash loop or a failed health check."""

    commit: str


@dataclass(frozen=True)
class Failed:
    """`commit` crash-looped or failed its health check; `why` says which, readably."""

    commit: str
    why: str
    pinned: bool = False


@dataclass(frozen=True)
class Retry:
    """The manager's `rollout --retry` counter, as every assignment carries it."""

    counter: int


Event = Arrived | RanWell | Failed | Retry


# decisions ------------------------------------------------------------------------------------
class Action(StrEnum):
    RUN = "run"  # run `commit` (on trial when `trial`)
    ROLL_BACK = "roll-back"  # check out `commit`, the last good one, and run it
    STAY_FAILED = "stay-failed"  # the failure stands; `reason` says why there is no rollback
    NOTHING = "nothing"


@dataclass(frozen=True)
class Decision:
    action: Action
    commit: str | None = None
    trial: bool = False
    note: str = ""  # a line for the project's log and the agent's ("" says nothing)
    reason: str = ""  # for the project's status reason


NOTHING = Decision(Action.NOTHING)


def step(state: RolloutState, event: Event) -> tuple[RolloutState, Decision]:
    """The next state and what to do, for one event."""
    if isinstance(event, Arrived):
        return _arrived(state, event)
    if isinstance(event, RanWell):
        if event.commit != state.trial:
            return state, NOTHING  # a stale timer, or a commit that is good already
        # Said when it replaces a good commit: a project's first commit starts as it always did.
        note = f"{short(event.commit)} ran well for its grace: the last good commit now"
        decision = Decision(Action.NOTHING, note=note if state.good else "")
        return replace(state, good=event.commit, trial=None), decision
    if isinstance(event, Failed):
        return _failed(state, event)
    return _retry(state, event)


def _arrived(state: RolloutState, event: Arrived) -> tuple[RolloutState, Decision]:
    commit = event.commit
    if commit == state.good:
        # The good one (again): no trial; still "rolled back" while a bad one is avoided.
        return replace(state, trial=None), Decision(Action.RUN, commit)
    if commit == state.bad and not event.pinned and state.good is not None:
        # Back at the bad commit (an agent restarted mid-checkout, say): not tried again.
        bad, good = short(commit), short(state.good)
        note = f"not running {bad} again ({state.bad_reason}); running {good}"
        return replace(state, trial=None), Decision(Action.ROLL_BACK, state.good, note=note)
    if commit == state.trial:
        return state, Decision(Action.RUN, commit, trial=True)  # restarted while on trial
    # A new commit (a pinned bad one is the user's wish): whatever was bad is history now.
    last = f"last good {short(state.good)}" if state.good else "no commit ran well here yet"
    earlier = state.good is not None or state.trial is not None
    said = f" ({event.subject[:MAX_SUBJECT]})" if event.subject else ""
    note = f"new commit {short(commit)}{said} → running (on trial; {last})" if earlier else ""
    new = replace(state, trial=commit, bad=None, bad_reason="")
    return new, Decision(Action.RUN, commit, trial=True, note=note)


def _failed(state: RolloutState, event: Failed) -> tuple[RolloutState, Decision]:
    if event.commit != state.trial:
        return state, NOTHING  # not on trial: an ordinary failure
    untried = replace(state, trial=None)
    if event.pinned:
        reason = "pinned by --ref, so not rolled back"
        return untried, Decision(Action.STAY_FAILED, reason=reason)
    if state.good is None:
        reason = "no earlier commit ran well here: nothing to roll back to"
        return untried, Decision(Action.STAY_FAILED, reason=reason)
    why = event.why if len(event.why) <= MAX_WHY else event.why[: MAX_WHY - 1] + "…"
    new = replace(untried, bad=event.commit, bad_reason=why)
    note = new.reason() + "; not tried again until a newer commit or `rollout --retry`"
    return new, Decision(Action.ROLL_BACK, state.good, note=note, reason=new.reason())


def _retry(state: RolloutState, event: Retry) -> tuple[RolloutState, Decision]:
    new = replace(state, retry_seen=event.counter)
    if event.counter <= state.retry_seen or state.bad is None:
        return new, NOTHING
    bad = state.bad
    new = replace(new, bad=None, bad_reason="", trial=bad)
    note = f"trying {short(bad)} again (rollout --retry)"
    return new, Decision(Action.RUN, bad, trial=True, note=note)


# the record on disk ---------------------------------------------------------------------------
def load(path: Path) -> RolloutState:
    """The state kept at `path`; a fresh one when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return RolloutState()
    if not isinstance(data, dict):
        return RolloutState()
    retry = data.get("retry_seen")
    return RolloutState(
        good=_sha(data.get("good")),
        bad=_sha(data.get("bad")),
        bad_reason=str(data.get("bad_reason") or ""),
        retry_seen=retry if isinstance(retry, int) and not isinstance(retry, bool) else 0,
        trial=_sha(data.get("trial")),
    )


def save(path: Path, state: RolloutState) -> None:
    """Keep `state` at `path`, atomically (a crash leaves the old file or the new one)."""
    write_private_json(path, asdict(state))


def _sha(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
