"""The rollout machine (node/rollout.py), from tables: state + event -> state + decision."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from syncopate.node import rollout
from syncopate.node.rollout import (
    Action,
    Arrived,
    Event,
    Failed,
    RanWell,
    Retry,
    RolloutState,
    step,
)

C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40
LOOP = "crash loop: 5 runs in a row each ended within 10s (last: code 1)"
SICK = "failed its health check: exit status 1"

FRESH = RolloutState()
GOOD = RolloutState(good=C1)  # C1 ran well
TRYING = RolloutState(good=C1, trial=C2)  # C2 arrived and runs on trial
FIRST_TRIAL = RolloutState(trial=C1)  # the first commit, nothing good yet
ROLLED = RolloutState(good=C1, bad=C2, bad_reason=LOOP, retry_seen=3)  # C2 failed: C1 again


@pytest.mark.parametrize(
    ("state", "event", "after", "action", "commit", "trial"),
    [
        # a first commit runs on trial; nothing to roll back to yet
        (FRESH, Arrived(C1), FIRST_TRIAL, Action.RUN, C1, True),
        # it ran well: the last good commit now
        (FIRST_TRIAL, RanWell(C1), GOOD, Action.NOTHING, None, False),
        # the good commit started again (a restart, an agent restart): no trial
        (GOOD, Arrived(C1), GOOD, Action.RUN, C1, False),
        (GOOD, RanWell(C1), GOOD, Action.NOTHING, None, False),  # a stale timer
        # a new commit: on trial
        (GOOD, Arrived(C2), TRYING, Action.RUN, C2, True),
        # restarted while on trial: still on trial
        (TRYING, Arrived(C2), TRYING, Action.RUN, C2, True),
        # it ran well for its grace: good, the trial over
        (TRYING, RanWell(C2), RolloutState(good=C2), Action.NOTHING, None, False),
        # it crash-looped within its grace: back to C1, C2 is bad
        (
            TRYING,
            Failed(C2, LOOP),
            RolloutState(good=C1, bad=C2, bad_reason=LOOP),
            Action.ROLL_BACK,
            C1,
            False,
        ),
        # it failed its health check within its grace: the same
        (
            TRYING,
            Failed(C2, SICK),
            RolloutState(good=C1, bad=C2, bad_reason=SICK),
            Action.ROLL_BACK,
            C1,
            False,
        ),
        # pinned with --ref: a pinned commit that fails just fails, no rollback loop
        (TRYING, Failed(C2, LOOP, pinned=True), GOOD, Action.STAY_FAILED, None, False),
        # the first commit fails: nothing to roll back to
        (FIRST_TRIAL, Failed(C1, LOOP), FRESH, Action.STAY_FAILED, None, False),
        (FIRST_TRIAL, Failed(C1, SICK), FRESH, Action.STAY_FAILED, None, False),
        # a failure of a commit not on trial is an ordinary one
        (GOOD, Failed(C1, LOOP), GOOD, Action.NOTHING, None, False),
        (GOOD, Failed(C1, SICK), GOOD, Action.NOTHING, None, False),
        (ROLLED, Failed(C1, LOOP), ROLLED, Action.NOTHING, None, False),
        # rolled back: the good commit runs without a trial, still rolled back
        (ROLLED, Arrived(C1), ROLLED, Action.RUN, C1, False),
        # the bad commit again (an agent restarted mid-rollback): the good one runs instead
        (ROLLED, Arrived(C2), ROLLED, Action.ROLL_BACK, C1, False),
        # ... unless pinned: the user's wish, on trial
        (
            ROLLED,
            Arrived(C2, pinned=True),
            RolloutState(good=C1, retry_seen=3, trial=C2),
            Action.RUN,
            C2,
            True,
        ),
        # a newer commit arrives: the bad one is history, the new one on trial
        (ROLLED, Arrived(C3), RolloutState(good=C1, retry_seen=3, trial=C3), Action.RUN, C3, True),
        # `rollout --retry` grew the counter: the bad commit is tried again
        (ROLLED, Retry(4), RolloutState(good=C1, retry_seen=4, trial=C2), Action.RUN, C2, True),
        # the same counter (every assignment carries it), or a lower one: nothing
        (ROLLED, Retry(3), ROLLED, Action.NOTHING, None, False),
        (
            ROLLED,
            Retry(2),
            replace(ROLLED, retry_seen=2),
            Action.NOTHING,
            None,
            False,
        ),
        # a grown counter with nothing bad: only remembered
        (GOOD, Retry(1), RolloutState(good=C1, retry_seen=1), Action.NOTHING, None, False),
        (
            TRYING,
            Retry(1),
            RolloutState(good=C1, trial=C2, retry_seen=1),
            Action.NOTHING,
            None,
            False,
        ),
    ],
)
def test_step(
    state: RolloutState,
    event: Event,
    after: RolloutState,
    action: Action,
    commit: str | None,
    trial: bool,
) -> None:
    new, decision = step(state, event)
    assert new == after
    assert (decision.action, decision.commit, decision.trial) == (action, commit, trial)


def test_the_log_lines_say_what_happened() -> None:
    _, arrived = step(GOOD, Arrived(C2))
    assert arrived.note == f"new commit {C2[:7]} → running (on trial; last good {C1[:7]})"
    # A project's first commit starts quietly, as before; the next one is news.
    assert step(FRESH, Arrived(C1))[1].note == step(FIRST_TRIAL, RanWell(C1))[1].note == ""
    _, second = step(FIRST_TRIAL, Arrived(C2))
    assert second.note == f"new commit {C2[:7]} → running (on trial; no commit ran well here yet)"
    rolled, back = step(TRYING, Failed(C2, LOOP))
    assert back.reason == f"rolled back to {C1[:7]}: {C2[:7]} {LOOP}"
    assert back.note.startswith(back.reason) and "rollout --retry" in back.note
    assert rolled.reason() == back.reason and rolled.rolled_back
    _, sick = step(TRYING, Failed(C2, SICK))
    assert (
        sick.reason == f"rolled back to {C1[:7]}: {C2[:7]} failed its health check: exit status 1"
    )
    _, nothing = step(FIRST_TRIAL, Failed(C1, LOOP))
    assert nothing.reason == "no earlier commit ran well here: nothing to roll back to"
    _, pinned = step(TRYING, Failed(C2, LOOP, pinned=True))
    assert "pinned by --ref" in pinned.reason
    _, well = step(TRYING, RanWell(C2))
    assert well.note == f"{C2[:7]} ran well for its grace: the last good commit now"
    _, retried = step(ROLLED, Retry(4))
    assert retried.note == f"trying {C2[:7]} again (rollout --retry)"
    assert not GOOD.rolled_back and GOOD.reason() == ""


def test_a_long_reason_is_cut_to_fit_the_report() -> None:
    state, decision = step(TRYING, Failed(C2, "failed its health check: " + "x" * 5000))
    assert len(state.bad_reason) == rollout.MAX_WHY and state.bad_reason.endswith("…")
    assert len(decision.reason) < 1100


def test_a_bad_commit_is_not_rolled_back_to_in_a_loop() -> None:
    """Fail, roll back, the bad commit shows up again: the good one runs, nothing else."""
    state, _ = step(TRYING, Failed(C2, LOOP))
    for _ in range(3):
        state, decision = step(state, Arrived(C2))
        assert (decision.action, decision.commit) == (Action.ROLL_BACK, C1)
        state, decision = step(state, Arrived(C1))
        assert (decision.action, decision.trial) == (Action.RUN, False)
    assert state.bad == C2 and state.trial is None


def test_the_record_survives_a_restart_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "rollouts" / "web.json"
    assert rollout.load(path) == FRESH  # none yet
    rollout.save(path, ROLLED)
    assert rollout.load(path) == ROLLED
    assert path.stat().st_mode & 0o777 == 0o600
    for text in ("not json", "[1, 2]", '{"good": 5, "retry_seen": true, "bad": ""}'):
        path.write_text(text, encoding="utf-8")
        assert rollout.load(path) == FRESH


def test_a_new_commit_s_note_names_its_subject() -> None:
    _, arrived = step(GOOD, Arrived(C2, subject="fix the sensor"))
    assert arrived.note == (
        f"new commit {C2[:7]} (fix the sensor) → running (on trial; last good {C1[:7]})"
    )
