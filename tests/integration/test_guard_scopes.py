"""The credential throttle's scopes with real parts: a real agent polls on through a lockout of
controller tokens at its address, /hw_supervisor counts a wrong `pword` in each scope it was
tried in, and the manager logs a lockout once and a node's death (DESIGN §15)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from syncopate.manager.throttle import CONTROLLER, node_scope
from syncopate.states import NodeStatus
from tests.helpers import RunningManager, SimNode, running_manager, wait_for
from tests.integration.test_agent import Fleet
from tests.integration.test_guard import (
    LIMIT,
    assert_locked,
    call,
    controller,
    hw,
    poll,
    session_from,
)


async def test_a_real_agent_stays_alive_through_a_lockout_of_controller_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The DoS a tryout found: wrong controller tokens from a Pi that also runs a node locked
    its polls out too, and the node died after the node timeout."""
    caplog.set_level(logging.INFO, logger="syncopate.manager")
    timeout = 1.0
    async with running_manager(tmp_path / "m", node_timeout=timeout) as manager:
        fleet = Fleet(manager, tmp_path)
        await fleet.start_agent("pi-1")
        try:
            async with session_from() as session:
                url = manager.url + "/controller"
                statuses = [
                    (await call(session, "POST", url, **controller("guess")))[0]
                    for _ in range(LIMIT + 3)
                ]
            assert statuses == [401] * LIMIT + [429] * 3
            locked_at = time.monotonic()
            cluster, deaths = manager.state.cluster, []

            async def polled_long_past_the_timeout() -> bool:
                node = cluster.nodes["pi-1"]
                if node.status is not NodeStatus.ALIVE:
                    deaths.append(node.status)
                # last_contact moves only when a poll got past the token check: a 200.
                return node.last_contact > locked_at + 3 * timeout

            await wait_for(polled_long_past_the_timeout, timeout=20, what="pi-1 to poll on")
            assert not deaths
            assert manager.state.throttle.retry_after("127.0.0.1", CONTROLLER, time.monotonic())
        finally:
            await fleet.stop_agent("pi-1")
    lines = [r for r in caplog.records if r.getMessage().startswith("locked 127.0.0.1 out")]
    assert len(lines) == 1, [r.getMessage() for r in lines]  # once, not per refused request
    assert lines[0].levelno == logging.WARNING
    assert "controller tokens" in lines[0].getMessage()
    assert not [r for r in caplog.records if " is dead: " in r.getMessage()]


async def test_a_wrong_pword_counts_in_both_scopes_it_was_tried_in(
    manager: RunningManager,
) -> None:
    """Tried as dev-1's token and as a controller token: 5 lock both at that address, so
    neither guessing goes faster on /hw_supervisor than on its own routes."""
    device = await SimNode.join(manager.url, "dev-1", agent_version=None)
    neighbour = await SimNode.join(manager.url, "pi-2")
    hw_url = manager.url + "/hw_supervisor"
    try:
        async with session_from() as session:
            for attempt in range(1, LIMIT + 1):
                status, _, text = await call(session, "GET", hw_url, **hw("guess", "dev-1"))
                assert status == 401, f"attempt {attempt}: {status} {text}"
            got = await call(session, "GET", hw_url, **hw(device.token, "dev-1"))
            assert_locked(*got, "tokens of node 'dev-1'")  # not even tried: said so
            got = await call(session, "POST", manager.url + "/node-status", **poll(device))
            assert_locked(*got, "tokens of node 'dev-1'")
            got = await call(session, "POST", manager.url + "/controller", **controller("x"))
            assert_locked(*got, "controller tokens")
            got = await call(session, "POST", manager.url + "/node-status", **poll(neighbour))
            assert got[0] == 200, got
    finally:
        await device.close()
        await neighbour.close()


async def test_a_device_locked_out_of_its_token_still_takes_a_controllers(
    manager: RunningManager,
) -> None:
    device = await SimNode.join(manager.url, "dev-1", agent_version=None)
    hw_url = manager.url + "/hw_supervisor"
    try:
        async with session_from() as session:
            for _ in range(LIMIT):
                got = await call(session, "POST", manager.url + "/node-status", **poll(device, "x"))
                assert got[0] == 401, got
            status, _, text = await call(session, "GET", hw_url, **hw(manager.token, "dev-1"))
            assert status == 200, text  # a controller acting for the device: its own scope
            got = await call(session, "GET", hw_url, **hw("guess", "dev-1"))
            assert_locked(*got, "tokens of node 'dev-1'")
        throttle = manager.state.throttle
        assert throttle.failures("127.0.0.1", CONTROLLER) == 1  # the guess was tried as one
        assert throttle.failures("127.0.0.1", node_scope("dev-1")) == 0  # locked: not tried
    finally:
        await device.close()


async def test_a_node_declared_dead_is_logged(
    manager: RunningManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncopate.manager")
    node = await SimNode.join(manager.url, "pi-1")
    try:
        await node.poll()  # from 127.0.0.1; then silent

        async def logged() -> list[str]:
            return [r.getMessage() for r in caplog.records if " is dead: " in r.getMessage()]

        (line,) = await wait_for(logged, timeout=10, what="the death to be logged")
        assert line.startswith("node pi-1 is dead: silent for over 1s (last heard from 127.0.0.1")
        await node.poll()
        assert any(
            r.getMessage() == "node pi-1 is alive again (from 127.0.0.1)" for r in caplog.records
        )
    finally:
        await node.close()
