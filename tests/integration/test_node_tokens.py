"""A node's token is bound to its node (DESIGN §15): node A's token cannot read node B's
assignments, secrets or commands, report or leave as B, answer B's command, or speak for a
device on /hw_supervisor; and `node forget` revokes a token at once.

Two nodes speak the protocol by hand (SimNode) to a real manager, so each refusal is seen as
the manager sends it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from syncopate.errors import Forbidden, NotFound, Unauthorized
from tests.helpers import RunningManager, SimNode, wait_for

ALPHA_SECRET = "alpha-secret-4b1d"
BETA_SECRET = "beta-secret-9c2e"


async def two_nodes_with_a_project_each(
    manager: RunningManager,
) -> tuple[SimNode, SimNode, dict[str, Any]]:
    """(a, b, status): node a runs alpha, node b runs beta, each project with a secret."""
    a = await SimNode.join(manager.url, "pi-a")
    b = await SimNode.join(manager.url, "pi-b")
    async with manager.client() as ctl:
        await ctl.add(
            "alpha", "https://example.com/alpha.git", secrets={"KEY": ALPHA_SECRET}, env={"E": "a"}
        )
        await ctl.add(
            "beta", "https://example.com/beta.git", secrets={"KEY": BETA_SECRET}, env={"E": "b"}
        )
        status = await ctl.status()
    assert {status["alpha"]["node"], status["beta"]["node"]} == {"pi-a", "pi-b"}, status
    if status["alpha"]["node"] == "pi-b":
        a, b = b, a  # so that a runs alpha and b runs beta
    return a, b, status


async def test_a_node_sees_only_its_own_assignments_and_secrets(
    manager: RunningManager,
) -> None:
    a, b, _ = await two_nodes_with_a_project_each(manager)
    try:
        mine = await a.client.node_status(a.name, a.token)
        assert set(mine["projects"]) == {"alpha"}
        alpha = mine["projects"]["alpha"]
        assert alpha["environment-variables"] == {"E": "a", "KEY": ALPHA_SECRET}
        assert BETA_SECRET not in str(mine)
        # B's assignments with A's token: refused, and nothing of B's in the answer.
        with pytest.raises(Unauthorized) as refused:
            await a.client.node_status(b.name, a.token)
        assert BETA_SECRET not in str(refused.value) and "beta" not in str(refused.value)
    finally:
        await a.close()
        await b.close()


async def test_a_node_cannot_report_or_leave_as_another(manager: RunningManager) -> None:
    a, b, before = await two_nodes_with_a_project_each(manager)
    try:
        await a.poll()
        await b.poll()
        beta = b.seen["beta"]
        report = {
            "project-name": "beta",
            "project-url": beta["project-url"],
            "status": "running",
            "epoch": beta["epoch"],
            "persistent-variables": {"hijacked": True},
        }
        with pytest.raises(Unauthorized):
            await a.client.node_update(b.name, a.token, report)  # as B
        with pytest.raises(Forbidden, match="not assigned to node"):
            await a.client.node_update(a.name, a.token, report)  # B's project, as itself
        with pytest.raises(Unauthorized):
            await a.client.node_leave(b.name, a.token)
        async with manager.client() as ctl:
            after = await ctl.status()
            nodes = await ctl.nodes()
        assert after["beta"]["persistent-variables"] == before["beta"]["persistent-variables"]
        assert after["beta"]["node"] == b.name and nodes[b.name]["status"] == "alive"
    finally:
        await a.close()
        await b.close()


async def test_a_node_cannot_answer_another_nodes_command(manager: RunningManager) -> None:
    a, b, _ = await two_nodes_with_a_project_each(manager)
    try:
        async with manager.client() as ctl:
            (sent,) = (await ctl.command_send([b.name], "print('for b')")).values()
        command_id = int(sent["id"])
        mine = await a.client.node_status(a.name, a.token)
        assert not mine.get("commands"), mine  # A is not handed B's command
        theirs = await b.client.node_status(b.name, b.token)
        assert [c["id"] for c in theirs["commands"]] == [command_id]
        with pytest.raises(Unauthorized):
            await a.client.node_command_result(b.name, a.token, command_id, "forged", 0, 0.1)
        with pytest.raises(NotFound):
            await a.client.node_command_result(a.name, a.token, command_id, "forged", 0, 0.1)
        async with manager.client() as ctl:
            shown = await ctl.command_show(command_id)
        assert shown["state"] == "collected" and not shown.get("response"), shown
        await b.client.node_command_result(b.name, b.token, command_id, "for b", 0, 0.1)
        async with manager.client() as ctl:
            assert (await ctl.command_show(command_id))["response"] == "for b"
    finally:
        await a.close()
        await b.close()


async def test_a_node_cannot_speak_for_a_device(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "pi-a")
    device = await SimNode.join(manager.url, "esp", agent_version=None)  # a lite device
    try:
        hw = {"user": device.name, "pword": a.token, "command": "status_query"}
        response = await a.client.get("/hw_supervisor?" + urlencode(hw))
        assert response.status == 401, response.text()
        own = {"user": device.name, "pword": device.token, "command": "status_query"}
        response = await a.client.get("/hw_supervisor?" + urlencode(own))
        assert response.status == 200, response.text()
    finally:
        await a.close()
        await device.close()


async def test_forget_revokes_the_token_at_once(manager: RunningManager) -> None:
    """`node forget` on a dead node: its next poll is 401 (the agent joins again, or waits)."""
    a = await SimNode.join(manager.url, "pi-a")
    b = await SimNode.join(manager.url, "pi-b")
    try:
        await a.poll()

        async def a_dead() -> bool:
            await b.poll()  # b stays alive
            async with manager.client() as ctl:
                return bool((await ctl.nodes())[a.name]["status"] == "dead")

        await wait_for(a_dead, timeout=10, what="pi-a to be declared dead")
        async with manager.client() as ctl:
            await ctl.forget(a.name)
        update = {"project-name": "x", "project-url": "u", "status": "running"}
        with pytest.raises(Unauthorized):
            await a.client.node_status(a.name, a.token)
        with pytest.raises(Unauthorized):
            await a.client.node_update(a.name, a.token, update)
        with pytest.raises(Unauthorized):
            await a.client.node_leave(a.name, a.token)
        await b.poll()  # the other node is not affected
    finally:
        await a.close()
        await b.close()
