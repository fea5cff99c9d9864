"""Projects' output on the manager: which reported lines are new, and which notes go with them.

A node numbers the lines of each stream from 0 (a stream is one log sink: a new agent process or
another node starts a new one) and sends, with every report, the lines the manager has not yet
acknowledged. The manager remembers per project the stream it last took lines from and the next
number it expects there, so a report resent after a lost answer adds nothing twice:

    cursor, lines = accept(LogCursor(), "pi-1", "ab12", 0, ["one", "two"])   # both are new
    cursor, lines = accept(cursor, "pi-1", "ab12", 0, ["one", "two"])        # [] (a resend)
    cursor, lines = accept(cursor, "pi-2", "cd34", 0, ["three"])
    # ["[syncopate] now on node pi-2", "three"]

Each kept line has a time: when its node took it (the report's `log-times`), or when the
manager did when the node sent none or its clock is far from the manager's (`stamp`):

    cursor, lines, times = accept_timed(cursor, "pi-1", "ab12", 2, ["three"], [t], now)

Pure: no I/O. The cluster stores what this returns (project_log.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

# A node's time for a line is believed within this window around the manager's clock: a line
# may wait on its node for a while (the manager was down), but a node that booted without
# its clock set says 1970, and one a little ahead must not put lines in the future.
OLDEST_BELIEVED = 24 * 3600.0
NEWEST_BELIEVED = 1.0


@dataclass(frozen=True)
class LogCursor:
    """Where a project's output stands: the stream, the next line number in it, and its node."""

    stream: str = ""
    next: int = 0
    node: str = ""


def accept(
    cursor: LogCursor, node: str, stream: str, seq: int, lines: list[str]
) -> tuple[LogCursor, list[str]]:
    """The new cursor and the lines to append (notes of the manager's own included).

    `lines` are lines `seq`, `seq + 1`, ... of `stream` on `node`. Lines already taken from
    that stream are dropped; a new stream is taken from its start. A gap (lines the node no
    longer had when it could send them) and a change of node are noted in the log itself.
    """
    new_cursor, notes, skip = _accept(cursor, node, stream, seq, len(lines))
    if new_cursor is None:
        return cursor, []
    return new_cursor, notes + lines[skip:]


def accept_timed(
    cursor: LogCursor,
    node: str,
    stream: str,
    seq: int,
    lines: list[str],
    times: list[float] | None,
    now: float,
) -> tuple[LogCursor, list[str], list[float]]:
    """`accept`, with a time (seconds since the epoch) for each line to append.

    `times` are the node's, one per line (None: it sent none); see `stamp`. A note of the
    manager's takes the time of the first line after it, so it stays in place among them.
    """
    new_cursor, notes, skip = _accept(cursor, node, stream, seq, len(lines))
    if new_cursor is None:
        return cursor, [], []
    kept = stamp(times, len(lines), now)[skip:]
    note_time = kept[0] if kept else now
    return new_cursor, notes + lines[skip:], [note_time] * len(notes) + kept


def _accept(
    cursor: LogCursor, node: str, stream: str, seq: int, count: int
) -> tuple[LogCursor | None, list[str], int]:
    """The new cursor (None: nothing new), the notes, and how many of the lines to drop."""
    same_stream = stream == cursor.stream
    expected = cursor.next if same_stream else 0
    notes: list[str] = []
    if not same_stream and cursor.node and cursor.node != node:
        notes.append(f"[syncopate] now on node {node}")
    already = expected - seq
    if already >= count and same_stream:
        return None, [], count
    skip = 0
    if already > 0:
        skip = already
        seq = expected
    elif already < 0:
        notes.append(
            f"[syncopate] {count_lines(-already)} missing: they left the node's memory before they "
            "could be sent (its log file has them)"
        )
    return LogCursor(stream, seq + count - skip, node), notes, skip


def stamp(times: list[float] | None, count: int, now: float) -> list[float]:
    """A time for each of `count` lines: the node's where it is believable, else `now`.

    The node's times are used only when it sent one per line; each must lie within
    OLDEST_BELIEVED before `now` and NEWEST_BELIEVED after it (else `now`), and none comes
    before the one above it (a clock stepped back mid-batch must not reorder the log).
    """
    if times is None or len(times) != count:
        return [now] * count
    stamped: list[float] = []
    for time in times:
        good = math.isfinite(time) and now - OLDEST_BELIEVED <= time <= now + NEWEST_BELIEVED
        value = min(time, now) if good else now
        stamped.append(max(value, stamped[-1]) if stamped else value)
    return stamped


def iso(time: float | None) -> str | None:
    """A line's time as the wire carries it: ISO 8601 UTC to the millisecond (None: unknown)."""
    if time is None:
        return None
    moment = datetime.fromtimestamp(time, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def count_lines(count: int) -> str:
    """`1 line`, `2 lines`: a count of lines in a note."""
    return f"{count} line" if count == 1 else f"{count} lines"


def note(message: str) -> str:
    """A line of the manager's own in a project's log."""
    return f"[syncopate] {message}"
