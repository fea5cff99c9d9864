"""Clients given several manager URLs (DESIGN §13): a manager that cannot be reached is passed
over for the next at once; a bad URL among them is a clear error."""

from __future__ import annotations

import socket

import pytest

from syncopate.client import ManagerClient
from syncopate.errors import ConnectionFailed, Unreachable
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
