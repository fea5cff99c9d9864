"""How a command ended, for `command send --wait` and the TUI's command dialog alike.

`wait_answered` follows /events until every command sent has been answered (or has ended
without an answer); `exit_status` is the shell's view of the end, `describe_end` the sentence
for an end without a response.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from syncopate.client import ManagerClient
from syncopate.feed import FeedDropped

# A command that reached one of these has nothing more to wait for.
ANSWERED = frozenset({"responded", "analyzed", "timed-out", "canceled"})
TIMEOUT_STATUS = 124
# Constant: a waiting person is better served by a quick retry than by a growing backoff.
RECONNECT_DELAYS = (1.0,)


def exit_status(info: Mapping[str, Any]) -> int:
    """The shell's view of how a command ended: its exit code, 124 on timeout, 128+N on signal."""
    if info.get("state") == "timed-out" or info.get("response") == "TIMEOUT":
        return TIMEOUT_STATUS
    if info.get("state") == "canceled":
        return 1
    code = info.get("exit-code")
    if not isinstance(code, int):
        return 0
    if code < 0:
        return 128 - code
    return min(code, 255)


def describe_end(info: Mapping[str, Any]) -> str:
    """One line for a command that ended without a response."""
    reason = info.get("reason") or ""
    what = "timed out" if info.get("state") == "timed-out" else "was canceled"
    return f"command {info.get('id')} on {info.get('node')} {what}" + (
        f": {reason}" if reason else ""
    )


async def wait_answered(
    client: ManagerClient,
    ids: list[int],
    on_drop: Callable[[FeedDropped], None] | None = None,
) -> list[dict[str, Any]]:
    """Wait until every command has been answered (or ended); their final records.

    Subscribes first and then asks for each command, so an answer that came before the
    subscription is seen too; after a lost connection (told to `on_drop`) it does the same
    again.
    """
    done: dict[int, dict[str, Any]] = {}
    asked_after: dict[str, Any] | None = None  # the connection's snapshot: older than the asks

    async def ask(snapshot: dict[str, Any]) -> None:
        nonlocal asked_after
        asked_after = snapshot
        for command_id in ids:
            if command_id not in done:
                info = await client.command_show(command_id)
                if info.get("state") in ANSWERED:
                    done[command_id] = info

    async with contextlib.aclosing(
        client.follow_events(on_connect=ask, delays=RECONNECT_DELAYS)
    ) as feed:
        async for message in feed:
            if isinstance(message, FeedDropped):
                if on_drop is not None:
                    on_drop(message)
                continue
            if len(done) == len(ids):
                break
            if message is asked_after:
                continue
            # Snapshots (after a slow read) and changes both carry commands by id.
            for key, info in (message.get("commands") or {}).items():
                command_id = int(key)
                if command_id in ids and info and info.get("state") in ANSWERED:
                    done[command_id] = info
            if len(done) == len(ids):
                break
    return [done[i] for i in ids]
