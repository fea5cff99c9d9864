"""The credential throttle on a real manager: wrong credentials on any route lock the address.

Every route that takes a credential counts a wrong one against the client's address; the 5th
within a minute locks it out: 429 with Retry-After, on every credential route, before the
credential is checked (the right one too). Other addresses are not affected (a client bound to
127.0.0.2 shows it), a right credential clears the count, a malformed request counts nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncopate.errors import AGENT_HEADER
from tests.helpers import RunningManager, SimNode, running_manager, wait_for

LIMIT = 5  # the default: ManagerSettings.credential_max_failures


@asynccontextmanager
async def session_from(address: str = "127.0.0.1") -> AsyncIterator[aiohttp.ClientSession]:
    """A session whose connections come from `address` (any of 127/8 reaches the manager)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector, headers={AGENT_HEADER: "test"}) as s:
        yield s


async def call(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, dict[str, str], str]:
    """(status, headers, text) of one request."""
    async with session.request(method, url, **kwargs) as response:
        return response.status, dict(response.headers), await response.text()


def controller(manager: RunningManager, token: str) -> dict[str, Any]:
    return {"json": {"action": "status"}, "headers": {"Authorization": f"Bearer {token}"}}


def events(manager: RunningManager, token: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {token}"}}


def hw(manager: RunningManager, token: str) -> dict[str, Any]:
    return {"params": {"user": "nobody", "pword": token, "command": "status_query"}}


# (route, method, request with a given controller token, status with the right token)
CONTROLLER_ROUTES = [
    ("/controller", "POST", controller, 200),
    ("/events", "GET", events, 400),  # the right token, but not a WebSocket handshake
    ("/hw_supervisor", "GET", hw, 404),  # the right token, but no device of that name
]


def assert_locked(status: int, headers: dict[str, str], text: str) -> None:
    assert status == 429, (status, text)
    assert 1 <= int(headers["Retry-After"]) <= 60, headers
    assert "too many wrong" in text and "try again in" in text, text


@pytest.mark.parametrize(
    ("route", "method", "make", "right_status"),
    CONTROLLER_ROUTES,
    ids=[r[0] for r in CONTROLLER_ROUTES],
)
async def test_wrong_controller_tokens_lock_the_address_out_of_every_route(
    manager: RunningManager, route: str, method: str, make: Any, right_status: int
) -> None:
    url = manager.url + route
    node = await SimNode.join(manager.url, "pi-1")
    try:
        async with session_from() as session:
            status, _, text = await call(session, method, url, **make(manager, manager.token))
            assert status == right_status, text
            for attempt in range(1, LIMIT + 1):
                status, _, text = await call(session, method, url, **make(manager, "guess"))
                assert status == 401, f"attempt {attempt}: {status} {text}"
            assert_locked(*await call(session, method, url, **make(manager, "guess")))
            # Locked before the credential is checked: the right token is refused too, and on
            # every other route (one throttle per manager).
            assert_locked(*await call(session, method, url, **make(manager, manager.token)))
            for other, other_method, other_make, _ in CONTROLLER_ROUTES:
                got = await call(
                    session, other_method, manager.url + other, **other_make(manager, "x")
                )
                assert_locked(*got)
            poll = {"json": {"name": node.name, "access-token": node.token}}
            assert_locked(*await call(session, "POST", manager.url + "/node-status", **poll))
        async with session_from("127.0.0.2") as elsewhere:
            status, _, text = await call(elsewhere, method, url, **make(manager, manager.token))
            assert status == right_status, text  # another address is not locked
        assert manager.state.throttle.retry_after("127.0.0.1", time.monotonic()) > 0
    finally:
        await node.close()


async def test_wrong_node_tokens_on_any_node_route_add_up(manager: RunningManager) -> None:
    """Node tokens are counted too, and across routes: a guesser cannot spread its tries."""
    node = await SimNode.join(manager.url, "pi-1")
    wrong = {"name": node.name, "access-token": "guess"}
    tries = [
        ("/node-status", wrong),
        ("/node-update", {**wrong, "project-name": "a", "project-url": "u", "status": "good"}),
        ("/node-command-result", {**wrong, "id": 1, "response": "x"}),
        ("/node-leave", wrong),
        ("/node-status", {"name": "nobody", "access-token": node.token}),  # not its name
    ]
    try:
        async with session_from() as session:
            for route, body in tries:
                status, _, text = await call(session, "POST", manager.url + route, json=body)
                assert status == 401, (route, status, text)
            poll = {"name": node.name, "access-token": node.token}
            assert_locked(*await call(session, "POST", manager.url + "/node-status", json=poll))
        with pytest.raises(Exception, match="too many wrong"):
            await node.poll()  # our own client sees it too, as TooManyAttempts
    finally:
        await node.close()


async def test_a_right_credential_clears_the_count(manager: RunningManager) -> None:
    async with session_from() as session:
        url = manager.url + "/controller"
        for _ in range(2):
            for _ in range(LIMIT - 1):
                status, _, _ = await call(session, "POST", url, **controller(manager, "guess"))
                assert status == 401
            status, _, text = await call(session, "POST", url, **controller(manager, manager.token))
            assert status == 200, text


async def test_malformed_requests_count_nothing(manager: RunningManager) -> None:
    """A 400 is not a wrong credential: any number of them leaves the address unlocked."""
    async with session_from() as session:
        for _ in range(LIMIT * 3):
            status, _, _ = await call(
                session,
                "POST",
                manager.url + "/controller",
                data=b"{not json",
                headers={"Content-Type": "application/json"},
            )
            assert status == 400
            status, _, _ = await call(
                session, "POST", manager.url + "/node-status", json={"name": ["x"]}
            )
            assert status == 400
        status, _, text = await call(
            session, "POST", manager.url + "/controller", **controller(manager, manager.token)
        )
        assert status == 200, text


async def test_a_lockout_ends_after_its_time(tmp_path: Path) -> None:
    async with (
        running_manager(
            tmp_path / "m", credential_max_failures=2, credential_lockout=0.5
        ) as manager,
        session_from() as session,
    ):
        url = manager.url + "/controller"
        for _ in range(2):
            status, _, _ = await call(session, "POST", url, **controller(manager, "guess"))
            assert status == 401
        assert_locked(*await call(session, "POST", url, **controller(manager, manager.token)))

        async def let_in() -> bool:
            status, _, _ = await call(session, "POST", url, **controller(manager, manager.token))
            return status == 200

        await wait_for(let_in, timeout=5, what="the lockout to end")


async def test_a_locked_seed_node_gets_the_429_code(manager: RunningManager) -> None:
    """A seed-dialect request (no Syncopate-Agent header) gets HTTP 200 with `code` 429 and
    the reason, as for its other errors (DESIGN §10), and the Retry-After header."""
    node = await SimNode.join(manager.url, "pi-1", agent_version=None)
    form = {"name": node.name, "access-token": "guess"}
    try:
        async with aiohttp.ClientSession() as seed:
            for _ in range(LIMIT):
                status, _, text = await call(seed, "POST", manager.url + "/node-status", data=form)
                assert status == 200 and '"code": 101' in text, text
            status, headers, text = await call(
                seed, "POST", manager.url + "/node-status", data=form
            )
        assert status == 200 and '"code": 429' in text and "try again in" in text, text
        assert 1 <= int(headers["Retry-After"]) <= 60
    finally:
        await node.close()
