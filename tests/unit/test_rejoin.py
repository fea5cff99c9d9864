"""The agent's answer to a refused token (node/rejoin.py), with fake calls and tiny waits."""

from __future__ import annotations

import asyncio

from syncopate.errors import ConnectionFailed, TooManyAttempts, Unauthorized
from syncopate.node.backoff import BackoffPolicy
from syncopate.node.rejoin import Rejoin

TINY = BackoffPolicy(first=0.01, factor=2.0, cap=0.04)


class Calls:
    """Fake join/probe: raise the given errors in turn, then succeed; count give_up."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.tries = 0
        self.gave_up = 0

    async def attempt(self) -> None:
        self.tries += 1
        if self.errors:
            raise self.errors.pop(0)

    def give_up(self) -> None:
        self.gave_up += 1


async def test_with_a_password_it_joins_again_at_once() -> None:
    calls = Calls()
    rejoin = Rejoin(calls.attempt, calls.attempt, calls.give_up, TINY)
    await asyncio.wait_for(rejoin.recover(asyncio.Event(), "refused"), 5)
    assert (calls.tries, calls.gave_up, rejoin.refused) == (1, 0, False)


async def test_a_refused_password_stops_the_projects_once_and_keeps_trying() -> None:
    calls = Calls(Unauthorized("wrong join password"), Unauthorized("wrong join password"))
    rejoin = Rejoin(calls.attempt, calls.attempt, calls.give_up, TINY)
    await asyncio.wait_for(rejoin.recover(asyncio.Event(), "refused"), 5)
    assert (calls.tries, calls.gave_up, rejoin.refused, rejoin.gave_up) == (3, 1, False, False)


async def test_a_lockout_and_a_lost_connection_are_waited_out_without_giving_up() -> None:
    calls = Calls(TooManyAttempts("locked", 0.01), ConnectionFailed("down"))
    rejoin = Rejoin(calls.attempt, calls.attempt, calls.give_up, TINY)
    await asyncio.wait_for(rejoin.recover(asyncio.Event(), "refused"), 10)
    assert (calls.tries, calls.gave_up) == (3, 0)


async def test_without_a_password_it_stops_the_projects_then_probes_the_old_token() -> None:
    probe = Calls(Unauthorized("unknown node"))
    rejoin = Rejoin(None, probe.attempt, probe.give_up, TINY)
    assert probe.tries == 0
    await asyncio.wait_for(rejoin.recover(asyncio.Event(), "refused"), 5)
    # Stopped at once (no try first), probed after a wait, refused again, then taken.
    assert (probe.tries, probe.gave_up, rejoin.refused) == (2, 1, False)


async def test_stop_ends_the_wait() -> None:
    calls = Calls()
    rejoin = Rejoin(None, calls.attempt, calls.give_up, BackoffPolicy(first=3600, cap=3600))
    stop = asyncio.Event()
    task = asyncio.create_task(rejoin.recover(stop, "refused"))
    await asyncio.sleep(0)  # let it start waiting
    stop.set()
    await asyncio.wait_for(task, 5)
    assert (calls.tries, calls.gave_up, rejoin.refused) == (0, 1, True)
