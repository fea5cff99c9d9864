"""A project's output: a rotated log file on disk and its last lines in memory.

The node runs for months on devices with small SD cards, so the file is bounded: at most
`max_bytes` per file and `backups` old files (`name.log`, `name.log.1`, ... `name.log.3`), the
oldest dropped on each rotation. The last lines stay in memory for the `log-tail` of reports.

Every line gets a sequence number (0 for the sink's first line) in a stream named by a random id,
so the manager can tell a resent line from a new one and a new sink (a restarted agent, another
node) from the old one.

    log = LogSink(data_dir / "logs" / "blink.log")
    log.write(b"half a li")
    log.write(b"ne\nnext\n")      # writes "half a line" and "next"
    log.tail(2)                    # ["half a line", "next"]
    log.since(1)                   # Chunk(seq=1, lines=["next"], skipped=0)
    log.close()                    # writes a pending partial line, closes the file
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MAX_BYTES = 1024 * 1024
BACKUPS = 3
TAIL_LINES = 200
TAIL_LINE_CHARS = 500
# A line with no newline in sight is written out once this long, so the buffer stays bounded.
MAX_LINE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Chunk:
    """Lines of a sink from one sequence number on, as far as memory still holds them."""

    seq: int
    """The sequence number of `lines[0]` (of the next line to come when `lines` is empty)."""
    lines: list[str]
    skipped: int
    """Lines asked for that had already left memory; they are only in the file."""
    times: list[float] = field(default_factory=list, compare=False)
    """When each of `lines` was taken (seconds since the epoch); not compared: a chunk is
    its lines."""


class LogSink:
    """Takes a project's output as bytes; keeps whole lines on disk (rotated) and in memory."""

    def __init__(
        self,
        path: Path,
        max_bytes: int = MAX_BYTES,
        backups: int = BACKUPS,
        tail_lines: int = TAIL_LINES,
        line_chars: int = TAIL_LINE_CHARS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        if backups < 0:
            raise ValueError(f"backups must be 0 or more, not {backups}")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.line_chars = line_chars
        self.last_error: OSError | None = None
        """The error of the last failed write to the file (a full disk, say), None once a write
        succeeds again; the tail keeps working either way."""
        self.stream = secrets.token_hex(8)
        """This sink's id: sequence numbers count from 0 within it."""
        self._lines: deque[str] = deque(maxlen=max(0, tail_lines))
        # When each line in memory was taken: the manager shows it beside the line.
        self._times: deque[float] = deque(maxlen=max(0, tail_lines))
        self._clock = clock
        self._next_seq = 0
        self._partial = bytearray()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self._size = self._file.tell()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: bytes) -> None:
        """Add output; whole lines go to the file and the tail, the rest waits for its newline."""
        if self._closed:
            raise ValueError(f"write to a closed log: {self.path}")
        self._partial += data
        lines: list[bytes] = []
        while True:
            end = self._partial.find(b"\n")
            if end < 0:
                break
            lines.append(bytes(self._partial[:end]))
            del self._partial[: end + 1]
        while len(self._partial) >= MAX_LINE_BYTES:
            lines.append(bytes(self._partial[:MAX_LINE_BYTES]))
            del self._partial[:MAX_LINE_BYTES]
        self._add([line.decode("utf-8", errors="replace") for line in lines])

    def note(self, message: str) -> None:
        """Add a line of the node's own (an exit, a restart), after ending any partial line."""
        if self._closed:
            raise ValueError(f"note to a closed log: {self.path}")
        self._end_partial()
        self._add([f"[syncopate] {message}"])

    def tail(self, n: int | None = None) -> list[str]:
        """The last `n` lines kept in memory (all of them when `n` is None), oldest first."""
        if n is None:
            return list(self._lines)
        if n <= 0:
            return []
        return list(self._lines)[-n:]

    @property
    def next_seq(self) -> int:
        """The sequence number the next line will get: how many lines this sink has taken."""
        return self._next_seq

    def since(self, seq: int, limit: int | None = None) -> Chunk:
        """The lines from sequence number `seq` on (at most `limit`, oldest first).

        Lines that already left memory are skipped and counted; a `seq` beyond the last line
        gives no lines.
        """
        held = len(self._lines)
        first_held = self._next_seq - held
        start = min(max(seq, first_held), self._next_seq)
        skipped = max(0, first_held - max(seq, 0))
        count = self._next_seq - start
        if limit is not None:
            count = min(count, max(0, limit))
        offset = held - (self._next_seq - start)
        lines = list(itertools.islice(self._lines, offset, offset + count))
        times = list(itertools.islice(self._times, offset, offset + count))
        return Chunk(start, lines, skipped, times)

    def close(self) -> None:
        """Write a pending partial line and close the file. Closing twice is harmless."""
        if self._closed:
            return
        self._end_partial()
        self._closed = True
        self._file.close()

    def _end_partial(self) -> None:
        if self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            self._add([line.decode("utf-8", errors="replace")])

    def _add(self, lines: list[str]) -> None:
        if not lines:
            return
        now = self._clock()
        for line in lines:
            text = line[:-1] if line.endswith("\r") else line
            self._lines.append(text[: self.line_chars])
            self._times.append(now)
        self._next_seq += len(lines)
        try:
            self._write_file(lines)
        except OSError as error:
            self.last_error = error
        else:
            self.last_error = None

    def _write_file(self, lines: list[str]) -> None:
        if self._file.closed:  # a rotation failed half-way; try again with what is there
            self._file = self.path.open("ab")
            self._size = self._file.tell()
        pending = bytearray()
        for line in lines:
            encoded = (line + "\n").encode("utf-8", errors="replace")
            if len(encoded) > self.max_bytes:
                # One line longer than a whole file: keep its start, so the bound holds.
                encoded = encoded[: self.max_bytes - 1] + b"\n"
            if self._size + len(pending) + len(encoded) > self.max_bytes:
                self._file.write(pending)
                pending.clear()
                self._rotate()
            pending += encoded
        self._file.write(pending)
        self._size += len(pending)
        self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        try:
            if self.backups > 0:
                for index in range(self.backups - 1, 0, -1):
                    older = self._backup(index)
                    if older.exists():
                        os.replace(older, self._backup(index + 1))
                os.replace(self.path, self._backup(1))
        finally:
            # Truncating even when a rename failed: losing output beats filling the card.
            self._file = self.path.open("wb")
            self._size = 0

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")
