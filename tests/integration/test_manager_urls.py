"""Clients given several manager URLs (DESIGN §13): a manager that cannot be reached is passed
over for the next at once; a bad URL among them is a clear error; the leader a standby's answer
names is followed only where that is safe."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from syncopate.client import ManagerClient
from syncopate.errors import LEADER_HEADER, ConnectionFailed, NotFound, Unreachable
from syncopate.manager_transport import manager_urls
from tests.helpers import RunningManager


def closed_port() -> int:
    """A port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_manager_that_refuses_connections_is_passed_over(
    manager: RunningManager,
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    async with ManagerClient(f"{dead},{manager.url}", token=manager.token) as client:
        assert (await client.health())["status"] == "ok"
        assert client.url == manager.url
        assert await client.status() == {}  # and it stays with the one that answered
        assert client.url == manager.url


async def test_when_none_answers_the_error_names_the_last_tried() -> None:
    first, second = (f"http://127.0.0.1:{closed_port()}" for _ in range(2))
    async with ManagerClient(f"{first},{second}") as client:
        with pytest.raises(Unreachable, match=second.replace(".", r"\.")):
            await client.health()


def test_manager_urls_are_split_trimmed_and_checked() -> None:
    assert manager_urls(" http://a:1/ , https://b:2 ") == ["http://a:1", "https://b:2"]
    with pytest.raises(ConnectionFailed, match="must start with http"):
        manager_urls("http://a:1,b:2")
    with pytest.raises(ConnectionFailed, match="give http"):
        manager_urls(" , ")


@asynccontextmanager
async def naming(leader: Callable[[], str], status: int = 200) -> AsyncIterator[str]:
    """An HTTP server in the place of a standby: every answer (`status`) names `leader()` in
    Syncopate-Leader, as a standby's forwarded answers do. Its URL."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, status=status, headers={LEADER_HEADER: leader()})

    app = web.Application()
    app.router.add_get("/health", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_the_named_leader_is_followed_only_if_given_and_not_failed_lately(
    manager: RunningManager,
) -> None:
    elsewhere = "http://192.0.2.1:8471"
    async with (
        naming(lambda: elsewhere) as standby,
        ManagerClient(f"{standby},{manager.url}") as client,
    ):
        await client.health()
        assert client.url == standby  # a URL it was not given: never
    async with (
        naming(lambda: manager.url + "/ ") as standby,
        ManagerClient(f"{standby},{manager.url}") as client,
    ):
        await client.health()
        assert client.url == manager.url  # one of its own, spelled loosely
    dead = f"http://127.0.0.1:{closed_port()}"
    async with naming(lambda: dead) as standby, ManagerClient(f"{dead},{standby}") as client:
        await client.health()  # the dead one failed, then the standby answered
        assert client.url == standby  # not back to the one that just failed
        await client.health()
        assert client.url == standby
    async with (
        naming(lambda: manager.url, status=404) as standby,
        ManagerClient(f"{standby},{manager.url}") as client,
    ):
        with pytest.raises(NotFound):
            await client.health()
        assert client.url == standby  # only a good answer is followed
