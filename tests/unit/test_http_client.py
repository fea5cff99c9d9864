"""The small HTTP/1.1 client, against real servers on 127.0.0.1.

Well-behaved answers come from an aiohttp server (what the manager is); broken ones from a raw
asyncio server that writes exactly the bytes a test gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from aiohttp import web

from syncopate import http_client
from syncopate.client import ManagerClient
from syncopate.errors import ConnectionFailed, NotFound, ProtocolError
from syncopate.http_client import (
    BadResponse,
    CannotConnect,
    ConnectionLost,
    HttpClient,
    Target,
)
from tests.helpers import wait_for


@asynccontextmanager
async def aiohttp_server(app: web.Application) -> AsyncIterator[tuple[str, list[object]]]:
    """Serve `app` on an ephemeral port; yield its URL and the peers of the connections seen."""
    peers: list[object] = []

    @web.middleware
    async def note_peer(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.transport is not None:
            peer = request.transport.get_extra_info("peername")
            if peer not in peers:
                peers.append(peer)
        return await handler(request)

    app.middlewares.append(note_peer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", peers
    finally:
        await runner.cleanup()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """Serve `handler` on an ephemeral port; yield the URL and one entry per connection.

    On exit every accepted connection is closed and waited for, so no socket outlives the test.
    """
    accepted: list[int] = []
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writers.append(writer)
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", accepted
    finally:
        server.close()
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await server.wait_closed()


def raw_server(answer: bytes) -> AbstractAsyncContextManager[tuple[str, list[int]]]:
    """A server that reads one request head, writes exactly `answer` and closes."""

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()

    return tcp_server(answer_once)


def echo_app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"path": request.path, "body": body.decode(), "n": len(body)})

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b'{"parts": ', b"[1, 2, ", b"3]}"):
            await response.write(part)
        await response.write_eof()
        return response

    async def closing(request: web.Request) -> web.Response:
        return web.json_response({"closing": True}, headers={"Connection": "close"})

    app = web.Application()
    app.router.add_post("/base/echo", echo)
    app.router.add_post("/echo", echo)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/closing", closing)
    return app


async def test_keep_alive_reuses_one_connection() -> None:
    async with aiohttp_server(echo_app()) as (url, peers):
        client = HttpClient(url)
        try:
            for i in range(3):
                response = await client.request("POST", "/echo", f"body {i}".encode())
                assert response.status == 200
                assert response.headers["content-type"].startswith("application/json")
                assert f'"body": "body {i}"' in response.text()
        finally:
            await client.close()
    assert len(peers) == 1


async def test_concurrent_requests_use_separate_connections() -> None:
    async with aiohttp_server(echo_app()) as (url, peers):
        client = HttpClient(url)
        try:
            answers = await asyncio.gather(
                *(client.request("POST", "/echo", str(i).encode()) for i in range(5))
            )
        finally:
            await client.close()
    assert sorted(a.text().count('"n": 1') for a in answers) == [1] * 5
    assert 1 < len(peers) <= 5


async def test_base_path_of_the_url_prefixes_every_request() -> None:
    async with aiohttp_server(echo_app()) as (url, _):
        client = HttpClient(url + "/base/")
        try:
            response = await client.request("POST", "/echo", b"x")
        finally:
            await client.close()
    assert response.status == 200
    assert '"path": "/base/echo"' in response.text()


async def test_chunked_answer_is_joined() -> None:
    async with aiohttp_server(echo_app()) as (url, peers):
        client = HttpClient(url)
        try:
            first = await client.request("GET", "/chunked")
            second = await client.request("GET", "/chunked")
        finally:
            await client.close()
    assert first.body == second.body == b'{"parts": [1, 2, 3]}'
    assert len(peers) == 1  # the connection stayed usable after a chunked body


async def test_connection_close_is_honoured() -> None:
    async with aiohttp_server(echo_app()) as (url, peers):
        client = HttpClient(url)
        try:
            for _ in range(2):
                assert (await client.request("GET", "/closing")).status == 200
        finally:
            await client.close()
    assert len(peers) == 2


async def test_body_that_runs_until_the_connection_closes() -> None:
    async with raw_server(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end") as (
        url,
        accepted,
    ):
        client = HttpClient(url)
        try:
            first = await client.request("GET", "/")
            second = await client.request("GET", "/")
        finally:
            await client.close()
    assert first.body == second.body == b"until the end"
    assert len(accepted) == 2


async def test_a_kept_connection_the_server_closed_is_not_reused() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with raw_server(answer) as (url, accepted):
        client = HttpClient(url)
        try:
            assert (await client.request("GET", "/")).body == b"ok"

            # The server closed its side after answering; once the client has seen the end of
            # the stream, the idle connection is no longer offered for reuse.
            async def end_seen() -> bool:
                return all(c.reader.at_eof() for c in client._idle)

            await wait_for(end_seen, timeout=5, what="the client to see the server's close")
            assert (await client.request("GET", "/")).body == b"ok"
        finally:
            await client.close()
    assert len(accepted) == 2


async def test_an_idle_connection_is_dropped_after_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "IDLE_REUSE", 0.0)
    async with aiohttp_server(echo_app()) as (url, peers):
        client = HttpClient(url)
        try:
            for _ in range(2):
                assert (await client.request("POST", "/echo", b"x")).status == 200
        finally:
            await client.close()
    assert len(peers) == 2


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP"),
        (b"HTTP/2 200\r\n\r\n", "not an HTTP/1.x answer: illegal status line"),
        (b"HTTP/1.1 OK\r\n\r\n", "not an HTTP/1.x answer: illegal status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "illegal header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "illegal chunk header"),
        (
            b"HTTP/1.1 200 OK\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
            "status line and headers are over 16384 bytes",
        ),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "more than 100 headers"),
    ],
)
async def test_malformed_answers_are_refused_with_a_reason(answer: bytes, reason: str) -> None:
    async with raw_server(answer) as (url, _):
        client = HttpClient(url)
        try:
            with pytest.raises(BadResponse, match=reason):
                await client.request("GET", "/")
            assert client._idle == []  # a connection that spoke nonsense is not kept
        finally:
            await client.close()


async def test_an_answer_over_the_size_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "MAX_BODY", 1000)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"258\r\n" + b"a" * 600
    chunked += b"\r\n258\r\n" + b"a" * 600 + b"\r\n0\r\n\r\n"
    for answer in (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n" + b"a" * 1001,
        chunked,
        b"HTTP/1.0 200 OK\r\n\r\n" + b"a" * 1001,
    ):
        async with raw_server(answer) as (url, _):
            client = HttpClient(url)
            try:
                with pytest.raises(BadResponse, match="limit"):
                    await client.request("GET", "/")
            finally:
                await client.close()


async def test_a_truncated_answer_is_a_lost_connection() -> None:
    async with raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort") as (url, _):
        client = HttpClient(url)
        try:
            with pytest.raises(ConnectionLost, match="closed before the answer was complete"):
                await client.request("GET", "/")
        finally:
            await client.close()


async def test_a_server_that_never_answers_times_out_and_the_connection_is_dropped() -> None:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes

    async with tcp_server(hold) as (url, accepted):
        client = HttpClient(url)
        try:
            with pytest.raises(ConnectionLost, match=r"no answer within 0\.2 s"):
                await client.request("GET", "/", timeout=0.2)
            assert client._idle == []
        finally:
            await client.close()
    assert len(accepted) == 1


async def test_a_cancelled_request_does_not_leave_its_connection_for_the_next() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await release.wait()
        return web.json_response({})

    app = echo_app()
    app.router.add_get("/slow", slow)
    async with aiohttp_server(app) as (url, peers):
        client = HttpClient(url)
        try:
            task = asyncio.create_task(client.request("GET", "/slow"))
            await asyncio.wait_for(started.wait(), timeout=5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client._idle == []
            assert (await client.request("POST", "/echo", b"after")).status == 200
        finally:
            release.set()
            await client.close()
    assert len(peers) == 2


async def test_nobody_listening_is_cannot_connect() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = HttpClient(f"http://127.0.0.1:{port}")
    with pytest.raises(CannotConnect, match="refused"):
        await client.request("GET", "/")


async def test_header_values_with_line_breaks_are_refused() -> None:
    client = HttpClient("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="line break"):
        await client.request("GET", "/", headers={"X-Evil": "a\r\nInjected: yes"})


@pytest.mark.parametrize(
    ("url", "host_header", "base"),
    [
        ("http://127.0.0.1:8470", "127.0.0.1:8470", ""),
        ("https://manager.lan", "manager.lan", ""),
        ("http://manager.lan:80/", "manager.lan", ""),
        ("https://[::1]:8470/fleet/", "[::1]:8470", "/fleet"),
    ],
)
def test_target_of_a_url(url: str, host_header: str, base: str) -> None:
    target = Target.parse(url)
    assert target.host_header == host_header
    assert target.base_path == base


@pytest.mark.parametrize(
    "url",
    ["ftp://host", "http://", "http://host:99999", "http://host/?q=1", "http://u:p@host"],
)
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        Target.parse(url)


async def test_manager_client_names_what_went_wrong() -> None:
    async with raw_server(b"SSH-2.0-OpenSSH_9.6\r\n\r\n") as (url, _), ManagerClient(url) as client:
        with pytest.raises(ProtocolError, match=f"{url} answered something that is not HTTP"):
            await client.health()
    with pytest.raises(ConnectionFailed, match="invalid port"):
        ManagerClient("http://host:99999")
    answer = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nnope"
    async with raw_server(answer) as (url, _), ManagerClient(url) as client:
        with pytest.raises(NotFound, match="HTTP 404: nope"):
            await client.post("/anything", {})
