"""The credential throttle on a real manager: wrong credentials lock out their scope only.

A wrong credential counts against (the client's address, the credential's scope): `join`,
`controller` (the same on /controller, /events and /hw_supervisor's controller side) or
`node:<name>`. The 5th within a minute locks that address out of that scope: 429 with
Retry-After on every route of the scope, before the credential is checked (the right one too),
while the address's other scopes go on (its node polls above all). A right credential does not
clear the count; a malformed request counts nothing; other addresses (a client bound to
127.0.0.2) are not affected. A real agent through a lockout, and /hw_supervisor's two sides:
test_guard_scopes.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncopate.errors import AGENT_HEADER
from syncopate.manager.throttle import CONTROLLER, node_scope
from syncopate.manager.tokens import make_token
from syncopate.roles import Role
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


def controller(token: str) -> dict[str, Any]:
    return {"json": {"action": "status"}, "headers": {"Authorization": f"Bearer {token}"}}


def events(token: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {token}"}}


def hw(token: str, user: str = "nobody") -> dict[str, Any]:
    return {"params": {"user": user, "pword": token, "command": "status_query"}}


def poll(node: SimNode, token: str | None = None) -> dict[str, Any]:
    return {"json": {"name": node.name, "access-token": node.token if token is None else token}}


# (route, method, request with a given controller token, status with the right token)
CONTROLLER_ROUTES = [
    ("/controller", "POST", controller, 200),
    ("/events", "GET", events, 400),  # the right token, but not a WebSocket handshake
    ("/hw_supervisor", "GET", hw, 404),  # the right token, but no device of that name
]


def assert_locked(status: int, headers: dict[str, str], text: str, what: str = "") -> None:
    assert status == 429, (status, text)
    assert 1 <= int(headers["Retry-After"]) <= 60, headers
    assert "too many wrong" in text and "try again in" in text, text
    assert what in text, (what, text)


@pytest.mark.parametrize(
    ("route", "method", "make", "right_status"),
    CONTROLLER_ROUTES,
    ids=[r[0] for r in CONTROLLER_ROUTES],
)
async def test_wrong_controller_tokens_lock_the_address_out_of_controller_tokens_only(
    manager: RunningManager, route: str, method: str, make: Any, right_status: int
) -> None:
    url = manager.url + route
    node = await SimNode.join(manager.url, "pi-1")
    device = await SimNode.join(manager.url, "dev-1", agent_version=None)
    try:
        async with session_from() as session:
            status, _, text = await call(session, method, url, **make(manager.token))
            assert status == right_status, text
            for attempt in range(1, LIMIT + 1):
                status, _, text = await call(session, method, url, **make("guess"))
                assert status == 401, f"attempt {attempt}: {status} {text}"
            named = "controller tokens from 127.0.0.1"
            assert_locked(*await call(session, method, url, **make("guess")), named)
            # Locked before the token is checked: the right one is refused too, and on every
            # route that takes a controller token (one scope: guesses cannot spread).
            assert_locked(*await call(session, method, url, **make(manager.token)), named)
            for other, other_method, other_make, _ in CONTROLLER_ROUTES:
                got = await call(session, other_method, manager.url + other, **other_make("x"))
                assert_locked(*got, named)
            # The address's other scopes go on: node polls, a device's own side, joins.
            status, _, text = await call(
                session, "POST", manager.url + "/node-status", **poll(node)
            )
            assert status == 200, text
            as_device = hw(device.token, user=device.name)
            status, _, text = await call(
                session, "GET", manager.url + "/hw_supervisor", **as_device
            )
            assert status == 200, text
            joined = await SimNode.join(manager.url, "pi-2")
            await joined.close()
        async with session_from("127.0.0.2") as elsewhere:
            status, _, text = await call(elsewhere, method, url, **make(manager.token))
            assert status == right_status, text  # another address is not locked
        throttle, now = manager.state.throttle, time.monotonic()
        assert throttle.retry_after("127.0.0.1", CONTROLLER, now) > 0
        assert throttle.retry_after("127.0.0.1", node_scope(node.name), now) == 0
    finally:
        await node.close()
        await device.close()


async def test_wrong_tokens_of_a_node_add_up_across_routes_and_lock_out_that_node_only(
    manager: RunningManager,
) -> None:
    """A guesser of pi-1's token locks out pi-1 at that address: not pi-2, not controllers."""
    node = await SimNode.join(manager.url, "pi-1")
    neighbour = await SimNode.join(manager.url, "pi-2")
    wrong = {"name": node.name, "access-token": "guess"}
    tries = [
        ("/node-status", wrong),
        ("/node-update", {**wrong, "project-name": "a", "project-url": "u", "status": "good"}),
        ("/node-command-result", {**wrong, "id": 1, "response": "x"}),
        ("/node-leave", wrong),
        ("/node-status", wrong),
    ]
    try:
        async with session_from() as session:
            for route, body in tries:
                status, _, text = await call(session, "POST", manager.url + route, json=body)
                assert status == 401, (route, status, text)
            got = await call(session, "POST", manager.url + "/node-status", **poll(node))
            assert_locked(*got, "tokens of node 'pi-1' from 127.0.0.1")
            got = await call(session, "POST", manager.url + "/node-status", **poll(neighbour))
            assert got[0] == 200, got
            got = await call(
                session, "POST", manager.url + "/controller", **controller(manager.token)
            )
            assert got[0] == 200, got
        with pytest.raises(Exception, match="too many wrong"):
            await node.poll()  # our own client sees it too, as TooManyAttempts
    finally:
        await node.close()
        await neighbour.close()


async def test_a_right_credential_does_not_clear_the_count(manager: RunningManager) -> None:
    """The bypass a tryout found: a viewer's right token (or a node's polls) between guesses at
    the admin token used to start the count again, so the guesses never met a 429."""
    viewer, _ = make_token(manager.state.store, "watcher", Role.VIEWER)
    node = await SimNode.join(manager.url, "pi-1")
    url = manager.url + "/controller"
    statuses: list[int] = []
    try:
        async with session_from() as session:
            for _ in range(3):
                for _ in range(LIMIT - 1):
                    statuses.append((await call(session, "POST", url, **controller("guess")))[0])
                statuses.append((await call(session, "POST", url, **controller(viewer)))[0])
                got = await call(session, "POST", manager.url + "/node-status", **poll(node))
                assert got[0] == 200, got  # the node polls on, and resets nothing
    finally:
        await node.close()
    wrong = [s for i, s in enumerate(statuses) if i % LIMIT != LIMIT - 1]
    assert wrong[:LIMIT] == [401] * LIMIT, statuses  # the 5th wrong one locks the address out
    assert set(wrong[LIMIT:]) == {429}, statuses
    assert statuses[LIMIT - 1] == 200 and statuses[2 * LIMIT - 1 :: LIMIT] == [429, 429], statuses


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
            session, "POST", manager.url + "/controller", **controller(manager.token)
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
            status, _, _ = await call(session, "POST", url, **controller("guess"))
            assert status == 401
        assert_locked(*await call(session, "POST", url, **controller(manager.token)))

        async def let_in() -> bool:
            status, _, _ = await call(session, "POST", url, **controller(manager.token))
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
                assert status == 200 and json.loads(text)["code"] == 101, text
            status, headers, text = await call(
                seed, "POST", manager.url + "/node-status", data=form
            )
        answer = json.loads(text)
        assert status == 200 and answer["code"] == 429, text
        assert "try again in" in answer["request-information"], text
        assert 1 <= int(headers["Retry-After"]) <= 60
    finally:
        await node.close()
