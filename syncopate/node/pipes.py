"""Reading a child's output pipe on the event loop, for the supervisor and the command runner.

A project's output goes into its log through a `SinkReader`; a command's is kept in memory.

The agent makes its own pipe (`os.pipe()`) rather than asyncio's: on Python 3.11 a process's
`wait()` waits for asyncio's pipes to close, which a background grandchild can delay forever.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TypeVar

from syncopate.node.logs import LogSink

R = TypeVar("R", bound="PipeReader")


class PipeReader(asyncio.Protocol):
    """Takes what arrives on one pipe (subclasses say what to do with it in `data_received`);
    `done` is set when the writing end closes."""

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @staticmethod
    async def open(read_fd: int, make: Callable[[], R]) -> R:
        """Read the pipe's end `read_fd` with the reader `make()` builds (it owns the fd)."""
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        try:
            _, reader = await asyncio.get_running_loop().connect_read_pipe(make, pipe)
        except BaseException:
            pipe.close()
            raise
        return reader

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class SinkReader(PipeReader):
    """Reads a project's stdout and stderr (one pipe) into its log."""

    def __init__(self, sink: LogSink) -> None:
        super().__init__()
        self.sink = sink

    def data_received(self, data: bytes) -> None:
        if not self.sink.closed:
            self.sink.write(data)
