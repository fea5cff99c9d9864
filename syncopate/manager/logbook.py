"""Projects' output on the manager: which reported lines are new, and which notes go with them.

A node numbers the lines of each stream from 0 (a stream is one log sink: a new agent process or
another node starts a new one) and sends, with every report, the lines the manager has not yet
acknowledged. The manager remembers per project the stream it last took lines from and the next
number it expects there, so a report resent after a lost answer adds nothing twice:

    cursor, lines = accept(LogCursor(), "pi-1", "ab12", 0, ["one", "two"])   # both are new
    cursor, lines = accept(cursor, "pi-1", "ab12", 0, ["one", "two"])        # [] (a resend)
    cursor, lines = accept(cursor, "pi-2", "cd34", 0, ["three"])
    # ["[syncopate] now on node pi-2", "three"]

Pure: no I/O. The cluster stores what this returns.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    same_stream = stream == cursor.stream
    expected = cursor.next if same_stream else 0
    notes: list[str] = []
    if not same_stream and cursor.node and cursor.node != node:
        notes.append(f"[syncopate] now on node {node}")
    already = expected - seq
    if already >= len(lines) and same_stream:
        return cursor, []
    if already > 0:
        lines = lines[already:]
        seq = expected
    elif already < 0:
        notes.append(
            f"[syncopate] {-already} line(s) missing: they left the node's memory before they "
            "could be sent (its log file has them)"
        )
    return LogCursor(stream, seq + len(lines), node), notes + lines
