"""LogSink: rotation bounds the disk, the tail keeps the last lines, partial lines wait."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncopate.node.logs import MAX_LINE_BYTES, Chunk, LogSink


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "blink.log"


@pytest.fixture
def sink(log_path: Path) -> Iterator[LogSink]:
    log = LogSink(log_path)
    yield log
    log.close()


def files_of(log_path: Path) -> list[Path]:
    return sorted(log_path.parent.glob(log_path.name + "*"))


def test_lines_reach_the_file_and_the_tail(sink: LogSink, log_path: Path) -> None:
    sink.write(b"one\ntwo\n")
    assert log_path.read_text() == "one\ntwo\n"
    assert sink.tail() == ["one", "two"]
    assert sink.tail(1) == ["two"]
    assert sink.tail(0) == []


def test_partial_lines_wait_for_their_newline(sink: LogSink, log_path: Path) -> None:
    sink.write(b"hal")
    sink.write(b"f a li")
    assert sink.tail() == []
    assert log_path.read_text() == ""
    sink.write(b"ne\nnext\npart")
    assert sink.tail() == ["half a line", "next"]
    assert log_path.read_text() == "half a line\nnext\n"


def test_close_writes_the_pending_partial_line(log_path: Path) -> None:
    sink = LogSink(log_path)
    sink.write(b"no newline at the end")
    sink.close()
    sink.close()  # twice is harmless
    assert sink.tail() == ["no newline at the end"]
    assert log_path.read_text() == "no newline at the end\n"
    with pytest.raises(ValueError, match="closed"):
        sink.write(b"late\n")
    with pytest.raises(ValueError, match="closed"):
        sink.note("late")
    assert log_path.read_text() == "no newline at the end\n"


def test_note_ends_a_partial_line_first(sink: LogSink) -> None:
    sink.write(b"progress: 50%")
    sink.note("exited (code 3)")
    assert sink.tail() == ["progress: 50%", "[syncopate] exited (code 3)"]


def test_a_character_split_across_writes_survives(sink: LogSink) -> None:
    data = "temperature 21 °C\n".encode()
    cut = data.index("°".encode()) + 1  # inside the two bytes of the degree sign
    sink.write(data[:cut])
    sink.write(data[cut:])
    assert sink.tail() == ["temperature 21 °C"]


def test_invalid_utf8_is_replaced(sink: LogSink, log_path: Path) -> None:
    sink.write(b"bad \xff byte\r\n")
    assert sink.tail() == ["bad \ufffd byte"]
    assert "\ufffd" in log_path.read_text(encoding="utf-8")


def test_tail_keeps_the_last_lines_each_cut(log_path: Path) -> None:
    sink = LogSink(log_path, tail_lines=5, line_chars=10)
    try:
        sink.write(b"".join(f"line {i} {'x' * 20}\n".encode() for i in range(12)))
        assert sink.tail() == [f"line {i} {'x' * 20}"[:10] for i in range(7, 12)]
        assert all(len(line) == 10 for line in sink.tail())
    finally:
        sink.close()


def test_default_tail_is_200_lines_of_500_chars(sink: LogSink) -> None:
    sink.write(b"".join(f"{i} {'y' * 600}\n".encode() for i in range(250)))
    tail = sink.tail()
    assert len(tail) == 200
    assert tail[0].startswith("50 ")
    assert {len(line) for line in tail} == {500}


def test_rotation_bounds_the_disk(log_path: Path) -> None:
    sink = LogSink(log_path, max_bytes=1000, backups=3)
    try:
        for i in range(2000):
            sink.write(f"line {i:05d} of a chatty project\n".encode())
    finally:
        sink.close()
    files = files_of(log_path)
    assert [f.name for f in files] == ["blink.log", "blink.log.1", "blink.log.2", "blink.log.3"]
    assert all(f.stat().st_size <= 1000 for f in files)
    assert sum(f.stat().st_size for f in files) <= 4000
    # the newest lines are in the current file, the files are in order, no line is cut
    assert log_path.read_text().splitlines()[-1] == "line 01999 of a chatty project"
    older = (log_path.parent / "blink.log.1").read_text().splitlines()
    assert older[-1] < log_path.read_text().splitlines()[0]
    for f in files:
        assert all(line.endswith("chatty project") for line in f.read_text().splitlines())


def test_rotation_without_backups_truncates(log_path: Path) -> None:
    sink = LogSink(log_path, max_bytes=100, backups=0)
    try:
        for i in range(50):
            sink.write(f"{i:03d} some output\n".encode())
    finally:
        sink.close()
    assert [f.name for f in files_of(log_path)] == ["blink.log"]
    assert log_path.stat().st_size <= 100
    assert log_path.read_text().splitlines()[-1] == "049 some output"


def test_a_line_longer_than_a_file_is_cut_to_fit(log_path: Path) -> None:
    sink = LogSink(log_path, max_bytes=100, backups=1)
    try:
        sink.write(b"z" * 5000 + b"\n")
    finally:
        sink.close()
    assert all(f.stat().st_size <= 100 for f in files_of(log_path))
    assert sink.tail() == ["z" * 500]


def test_endless_output_without_newline_stays_bounded(log_path: Path) -> None:
    sink = LogSink(log_path, max_bytes=10_000, backups=1)
    try:
        for _ in range(100):
            sink.write(b"." * 4096)
        # the buffer never holds a whole line's limit: it was written out in pieces
        assert len(sink.tail()) == (100 * 4096) // MAX_LINE_BYTES
    finally:
        sink.close()
    assert sum(f.stat().st_size for f in files_of(log_path)) <= 20_000


def test_an_existing_file_is_appended_to_and_counted(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.write_bytes(b"x" * 90 + b"\n")
    sink = LogSink(log_path, max_bytes=100, backups=1)
    try:
        sink.write(b"after the agent restarted\n")
    finally:
        sink.close()
    assert log_path.read_text() == "after the agent restarted\n"
    assert (log_path.parent / "blink.log.1").read_bytes() == b"x" * 90 + b"\n"


# sequence numbers: what reports ship to the manager ---------------------------------------------
def test_lines_are_numbered_from_zero_in_a_stream_of_the_sinks_own(log_path: Path) -> None:
    first, second = LogSink(log_path), LogSink(log_path.with_name("other.log"))
    try:
        assert first.next_seq == 0
        assert first.since(0) == Chunk(0, [], 0)
        first.write(b"a\nb\nparti")
        first.note("exited (code 0)")  # ends the partial line: two more lines
        assert first.next_seq == 4
        assert first.since(0) == Chunk(0, ["a", "b", "parti", "[syncopate] exited (code 0)"], 0)
        assert first.since(2) == Chunk(2, ["parti", "[syncopate] exited (code 0)"], 0)
        assert first.since(4) == Chunk(4, [], 0)
        assert first.since(9) == Chunk(4, [], 0)  # nothing beyond the last line
        assert len(first.stream) == 16 and int(first.stream, 16) >= 0
        assert second.stream != first.stream
    finally:
        first.close()
        second.close()


def test_since_honours_the_limit_from_the_oldest_line_asked(sink: LogSink) -> None:
    sink.write(b"".join(f"{i}\n".encode() for i in range(10)))
    assert sink.since(3, limit=4) == Chunk(3, ["3", "4", "5", "6"], 0)
    assert sink.since(8, limit=4) == Chunk(8, ["8", "9"], 0)
    assert sink.since(0, limit=0) == Chunk(0, [], 0)


def test_lines_that_left_memory_are_skipped_and_counted(log_path: Path) -> None:
    sink = LogSink(log_path, tail_lines=5)
    try:
        sink.write(b"".join(f"{i}\n".encode() for i in range(12)))
        assert sink.next_seq == 12
        # Lines 0..6 are only in the file now; 7..11 are in memory.
        assert sink.since(0) == Chunk(7, ["7", "8", "9", "10", "11"], 7)
        assert sink.since(5, limit=2) == Chunk(7, ["7", "8"], 2)
        assert sink.since(7) == Chunk(7, ["7", "8", "9", "10", "11"], 0)
        assert sink.since(10) == Chunk(10, ["10", "11"], 0)
    finally:
        sink.close()


def test_a_sink_that_keeps_no_lines_still_counts_them(log_path: Path) -> None:
    sink = LogSink(log_path, tail_lines=0)
    try:
        sink.write(b"one\ntwo\n")
        assert sink.next_seq == 2
        assert sink.since(0) == Chunk(2, [], 2)
    finally:
        sink.close()


def test_each_line_keeps_the_time_it_was_taken(log_path: Path) -> None:
    now = [100.0]
    sink = LogSink(log_path, tail_lines=3, clock=lambda: now[0])
    try:
        sink.write(b"one\ntw")
        now[0] = 101.5
        sink.write(b"o\nthree\n")  # a line is taken when its newline comes
        now[0] = 102.0
        sink.note("exited")
        chunk = sink.since(1)
        assert chunk.lines == ["two", "three", "[syncopate] exited"]
        assert chunk.times == [101.5, 101.5, 102.0]
        assert sink.since(3, 1).times == [102.0]
    finally:
        sink.close()
