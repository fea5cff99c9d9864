"""A TCP proxy that delays what it passes, each way: a database "on the LAN" for the stores
benchmark (`--db-delay-ms`), where the real one is on this machine.

It runs in a child process of its own (Processes.spawn), so its work is not the manager's.
The delay is at least the one asked for: the event loop's timers wake to the millisecond, so
the benchmark measures and prints the round trip it really got (`round_trip`).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from multiprocessing.connection import Connection


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Pass on what `reader` gets, each chunk `delay` s after it came, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((0.0, b""))
    with contextlib.suppress(ConnectionError):
        await sender


async def _serve(conn: Connection, host: str, port: int, delay: float) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer, delay), _pipe(up_reader, writer, delay))

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    conn.send(server.sockets[0].getsockname()[1])
    async with server:
        await asyncio.to_thread(conn.recv)  # anything, or the parent gone: stop


def delay_proxy_main(conn: Connection, host: str, port: int, delay_ms: float) -> None:
    """Child process: proxy 127.0.0.1:<the port it sends> to host:port, `delay_ms` each way."""
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        asyncio.run(_serve(conn, host, port, delay_ms / 1000))


def round_trip(url: str, times: int = 50) -> float:
    """The median seconds of `SELECT 1` on the database at `url` (one round trip each)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        took = []
        for _ in range(times):
            start = time.perf_counter()
            connection.execute("SELECT 1").fetchone()
            took.append(time.perf_counter() - start)
    return statistics.median(took)
