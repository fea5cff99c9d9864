"""Process groups: signal one, tell whether it is alive, and end it (SIGTERM, `grace`, SIGKILL).

Everything the agent starts (a project's command, a command-channel program) runs in a session
of its own, so its process group is the unit the agent ends: nothing it forks outlives it. The
group's number is the pid of its leader (`start_new_session=True`). `end_group` is the one way
the supervisor and the command runner end a group; `leftovers.py` ends what an earlier agent
left, from its records, with the same `signal_group`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable

import psutil

from syncopate.node.backoff import BackoffPolicy, delays

# After SIGKILL a process may still take a moment (or hang in uninterruptible sleep); a process
# that left the group may hold the output pipe open. Past these bounds the agent moves on.
KILL_WAIT = 5.0
DRAIN_WAIT = 1.0
# How often a group is checked while it ends: often at first, then less, since each check
# scans every process.
POLLING = BackoffPolicy(first=0.02, factor=2.0, cap=0.25)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to process group `pgid`; a group that is gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_members(pgid: int) -> list[psutil.Process]:
    """The processes of group `pgid` that are still alive (zombies do not count)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def group_alive(pgid: int) -> bool:
    """True while any process of group `pgid` is alive (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return bool(group_members(pgid))


async def group_gone_within(proc: asyncio.subprocess.Process, pgid: int, timeout: float) -> bool:
    """Wait up to `timeout` for `proc` to be reaped and its whole group `pgid` to be gone."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await proc.wait()
    intervals = delays(POLLING)
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(next(intervals))
    return True


async def end_group(
    proc: asyncio.subprocess.Process,
    first: signal.Signals,
    grace: float,
    note: Callable[[str], None] | None = None,
) -> None:
    """End the group `proc` leads: send `first`, escalate to SIGKILL after `grace`, wait.

    With `first` SIGKILL there is no grace. Returns once the group is gone, or after KILL_WAIT
    more seconds if some process survives SIGKILL; `note` (if given) is told of each escalation.
    """
    pgid = proc.pid  # start_new_session: the leader of a new group with its own pid
    if not group_alive(pgid):
        return
    signal_group(pgid, first)
    if first != signal.SIGKILL:
        if await group_gone_within(proc, pgid, grace):
            return
        if note is not None:
            note(f"still running {grace:g}s after {first.name}; sending SIGKILL")
        signal_group(pgid, signal.SIGKILL)
    if not await group_gone_within(proc, pgid, KILL_WAIT) and note is not None:
        note(f"processes of group {pgid} survived SIGKILL for {KILL_WAIT:g}s")
