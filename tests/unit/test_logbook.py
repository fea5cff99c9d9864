"""logbook.accept: which reported output lines are new, from a table of cursors and reports."""

from __future__ import annotations

import pytest

from syncopate.manager.logbook import LogCursor, accept, accept_timed, iso, stamp

MOVED = "[syncopate] now on node pi-2"


def missing(count: int) -> str:
    counted = "1 line" if count == 1 else f"{count} lines"
    return (
        f"[syncopate] {counted} missing: they left the node's memory before they could "
        "be sent (its log file has them)"
    )


AT_S1 = LogCursor("s1", 3, "pi-1")  # lines 0, 1 and 2 of stream s1 from pi-1 are in

CASES = [
    # id, cursor, (node, stream, seq, lines), expected cursor, expected lines
    ("first-report", LogCursor(), ("pi-1", "s1", 0, ["a", "b"]), LogCursor("s1", 2, "pi-1"),
     ["a", "b"]),
    ("next-lines", AT_S1, ("pi-1", "s1", 3, ["d"]), LogCursor("s1", 4, "pi-1"), ["d"]),
    ("resent-whole", AT_S1, ("pi-1", "s1", 1, ["b", "c"]), AT_S1, []),
    ("resent-overlap", AT_S1, ("pi-1", "s1", 1, ["b", "c", "d", "e"]),
     LogCursor("s1", 5, "pi-1"), ["d", "e"]),
    ("gap-same-stream", AT_S1, ("pi-1", "s1", 7, ["h"]), LogCursor("s1", 8, "pi-1"),
     [missing(4), "h"]),
    ("new-stream-same-node", AT_S1, ("pi-1", "s2", 0, ["x"]), LogCursor("s2", 1, "pi-1"), ["x"]),
    # A new stream is taken from its start, even with numbers the old one had used.
    ("new-stream-low-numbers", LogCursor("s1", 500, "pi-1"), ("pi-1", "s2", 0, ["x"]),
     LogCursor("s2", 1, "pi-1"), ["x"]),
    ("new-stream-late-start", AT_S1, ("pi-1", "s2", 2, ["z"]), LogCursor("s2", 3, "pi-1"),
     [missing(2), "z"]),
    ("moved", AT_S1, ("pi-2", "s9", 0, ["y"]), LogCursor("s9", 1, "pi-2"), [MOVED, "y"]),
    ("moved-late-start", AT_S1, ("pi-2", "s9", 1, ["y"]), LogCursor("s9", 2, "pi-2"),
     [MOVED, missing(1), "y"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cursor", "report", "want_cursor", "want_lines"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_accept(
    cursor: LogCursor,
    report: tuple[str, str, int, list[str]],
    want_cursor: LogCursor,
    want_lines: list[str],
) -> None:
    node, stream, seq, lines = report
    assert accept(cursor, node, stream, seq, lines) == (want_cursor, want_lines)


def test_a_resend_after_a_lost_answer_adds_nothing_twice() -> None:
    cursor, first = accept(LogCursor(), "pi-1", "s1", 0, ["a", "b"])
    again, second = accept(cursor, "pi-1", "s1", 0, ["a", "b", "c"])
    assert first + second == ["a", "b", "c"]
    assert again == LogCursor("s1", 3, "pi-1")


NOW = 1_800_000_000.0


def test_stamp_believes_the_nodes_times_within_bounds_and_in_order() -> None:
    a_day = 24 * 3600.0
    node_times = [NOW - 60, NOW - 90, NOW + 0.5, NOW + 30, NOW - 2 * a_day, float("nan")]
    assert stamp(node_times, 6, NOW) == [NOW - 60, NOW - 60, NOW, NOW, NOW, NOW]
    assert stamp(None, 2, NOW) == [NOW, NOW]  # an older node sends none
    assert stamp([NOW - 1], 2, NOW) == [NOW, NOW]  # one per line, or none believed


def test_accept_timed_keeps_times_with_their_lines_and_notes_take_the_next_ones() -> None:
    cursor, lines, times = accept_timed(
        AT_S1, "pi-1", "s1", 1, ["b", "c", "d"], [NOW - 3, NOW - 2, NOW - 1], NOW
    )
    assert (cursor, lines, times) == (LogCursor("s1", 4, "pi-1"), ["d"], [NOW - 1])
    _, lines, times = accept_timed(AT_S1, "pi-2", "s2", 0, ["x"], [NOW - 5], NOW)
    assert lines == [MOVED, "x"] and times == [NOW - 5, NOW - 5]
    assert accept_timed(AT_S1, "pi-1", "s1", 0, ["a"], None, NOW) == (AT_S1, [], [])


def test_iso_is_utc_to_the_millisecond() -> None:
    assert iso(NOW + 0.25) == "2027-01-15T08:00:00.250Z"
    assert iso(None) is None
