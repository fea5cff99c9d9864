"""feed.follow: drops come as FeedDropped values, delays grow and start over, other errors pass."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

import pytest

from syncopate.errors import ConnectionFailed, NotFound, TooManyAttempts, Unauthorized, Unreachable
from syncopate.feed import (
    REFUSED_DELAY,
    FeedDropped,
    NumberedLines,
    follow,
    handshake_refusal,
    reconnect_delay,
)

DELAYS = (0.001, 0.002, 0.003)

Script = list[list[dict[str, Any] | Exception]]


def feeds(script: Script) -> Callable[[], AsyncGenerator[dict[str, Any], None]]:
    """Each call opens the next feed of the script: its messages, then its error (if any)."""
    remaining = list(script)

    async def feed() -> AsyncGenerator[dict[str, Any], None]:
        for item in remaining.pop(0):
            if isinstance(item, Exception):
                raise item
            yield item

    return feed


async def take(source: AsyncGenerator[Any, None], count: int) -> list[Any]:
    taken = [await anext(source) for _ in range(count)]
    await source.aclose()
    return taken


def test_reconnect_delay_repeats_the_last() -> None:
    assert [reconnect_delay(DELAYS, n) for n in range(5)] == [0.001, 0.002, 0.003, 0.003, 0.003]


async def test_drops_are_told_and_the_delay_grows_until_a_connection_works() -> None:
    snapshot = {"type": "snapshot"}
    script: Script = [
        [Unreachable("cannot reach the manager at x")],
        [Unreachable("cannot reach the manager at x")],
        [snapshot, {"type": "changes"}, ConnectionFailed("closed")],
        [snapshot],
    ]
    got = await take(follow(feeds(script), delays=DELAYS), 6)
    kinds = [m.delay if isinstance(m, FeedDropped) else m["type"] for m in got]
    # The third feed worked, so the drop after it waits the first delay again.
    assert kinds == [0.001, 0.002, "snapshot", "changes", 0.001, "snapshot"]
    assert str(got[0].error) == "cannot reach the manager at x"


async def test_on_connect_runs_before_the_snapshot_and_its_drop_is_a_drop() -> None:
    seen: list[str] = []
    calls = 0

    async def on_connect(snapshot: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        seen.append("on_connect")
        if calls == 1:
            raise Unreachable("cannot reach the manager at x")

    snapshot = {"type": "snapshot"}
    got = await take(
        follow(feeds([[snapshot], [snapshot]]), on_connect=on_connect, delays=DELAYS), 2
    )
    assert isinstance(got[0], FeedDropped) and got[1] is snapshot
    assert seen == ["on_connect", "on_connect"]


async def test_errors_not_retried_propagate() -> None:
    source = follow(feeds([[NotFound("no project named 'x'")]]), delays=DELAYS)
    with pytest.raises(NotFound):
        await anext(source)


def test_numbered_lines_are_taken_once_and_gaps_counted() -> None:
    lines = NumberedLines()
    assert lines.take(10, ["a", "b"]) == (0, ["a", "b"])
    assert lines.take(11, ["b", "c"]) == (0, ["c"])
    assert lines.take(15, ["f"]) == (2, ["f"])


def test_reconnect_delay_after_a_refused_token_or_a_lockout() -> None:
    """A refused token is not tried again within half a minute (each refusal counts as a guess
    against the address); a lockout is waited out as its Retry-After says."""
    assert reconnect_delay(DELAYS, 0, Unauthorized("token refused")) == REFUSED_DELAY
    assert reconnect_delay(DELAYS, 0, TooManyAttempts("locked", 42.0)) == 42.0
    assert reconnect_delay(DELAYS, 9, ConnectionFailed("down")) == DELAYS[-1]


def test_a_refused_handshake_says_why_in_words() -> None:
    assert handshake_refusal(401, None) == (
        "/events refused the controller token (revoked, rotated or wrong)"
    )
    assert handshake_refusal(429, "41") == (
        "/events refused: too many wrong controller tokens from this address; try again in 41 s"
    )
    assert handshake_refusal(503, None) == "/events refused: HTTP 503"
