"""The manager's behaviour through its API: real manager on loopback, protocol-level nodes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from syncopate.errors import Conflict, Forbidden, NotFound, Unauthorized
from tests.helpers import PASSWORD, RunningManager, SimNode, wait_for

URL = "file:///srv/git/counter.git"


async def project(manager: RunningManager, name: str) -> dict[str, Any]:
    async with manager.client() as ctl:
        return (await ctl.status([name]))[name]


async def test_join_wrong_password_is_refused(manager: RunningManager) -> None:
    async with manager.client() as client:
        with pytest.raises(Unauthorized, match="wrong join password"):
            await client.initialize("not-the-password", "pi")
        assert await client.nodes() == {}


async def test_join_preferred_name_taken_gets_another(manager: RunningManager) -> None:
    first = await SimNode.join(manager.url, "pi")
    second = await SimNode.join(manager.url, "pi")
    reserved = await SimNode.join(manager.url, "-1")
    assert first.name == "pi"
    assert second.name not in ("pi", "-1")
    assert reserved.name != "-1"
    async with manager.client() as ctl:
        assert set(await ctl.nodes()) == {first.name, second.name, reserved.name}
    for node in (first, second, reserved):
        await node.close()


async def test_join_with_a_form_body_like_the_seed(manager: RunningManager) -> None:
    form = {
        "preferred-name": "seed-node",
        "syncopate-password": PASSWORD,
        "storage": "500",
        "ram": "256",
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(manager.url + "/node-initialize", data=form) as response:
            assert response.status == 200
            answer = await response.json()
        assert answer["initialization-result"] == "success"
        assert answer["name"] == "seed-node"
        status_form = {"name": "seed-node", "access-token": answer["access-token"]}
        async with session.post(manager.url + "/node-status", data=status_form) as response:
            assert response.status == 200
            assert (await response.json())["projects"] == {}
    async with manager.client() as ctl:
        node = (await ctl.nodes())["seed-node"]
    assert (node["storage"], node["ram"], node["status"]) == (500, 256, "alive")


async def test_assignment_is_visible_to_its_owner_only(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        await ctl.add("counter", URL, {"count": 0})
    b = await SimNode.join(manager.url, "b", storage=1)
    assert "counter" in await a.poll()
    assert await b.poll() == {}
    for node in (a, b):
        await node.close()


async def test_update_only_from_the_owner_with_the_current_epoch(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        await ctl.add("counter", URL, {"count": 0})
    b = await SimNode.join(manager.url, "b", storage=1)
    seen = await a.poll()
    epoch = seen["counter"]["epoch"]
    with pytest.raises(Forbidden, match="not assigned to node 'b'"):
        await b.report("counter", variables={"count": 99}, url=URL, epoch=epoch)
    with pytest.raises(Conflict, match="stale epoch"):
        await a.report("counter", variables={"count": 98}, epoch=epoch - 1)
    with pytest.raises(Conflict, match="project-url"):
        await a.report("counter", variables={"count": 97}, url="file:///elsewhere.git")
    assert (await project(manager, "counter"))["persistent-variables"] == {"count": 0}
    await a.report("counter", variables={"count": 1})
    assert (await project(manager, "counter"))["persistent-variables"] == {"count": 1}
    for node in (a, b):
        await node.close()


async def test_seed_report_without_epoch_is_accepted(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        await ctl.add("counter", URL, {"count": 0})
    await a.poll()
    body = {
        "project-name": "counter",
        "project-url": URL,
        "status": "good",
        "disk-usage": 3,
        "ram-usage": 4,
        "persistent-variables": "{'count': 12}",
    }
    await a.client.node_update(a.name, a.token, body)
    info = await project(manager, "counter")
    assert info["status"] == "running"
    assert info["persistent-variables"] == {"count": 12}
    await a.close()


async def test_failover_carries_the_last_variables(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        await ctl.add("counter", URL, {"count": 0})
    b = await SimNode.join(manager.url, "b")
    first_epoch = (await a.poll())["counter"]["epoch"]
    await a.report("counter", variables={"count": 41})

    # a goes silent; b keeps polling and is handed the project with its last variables.
    async def moved_to_b() -> dict[str, Any] | None:
        seen = await b.poll()
        return seen.get("counter")

    handed = await wait_for(moved_to_b, timeout=10, what="counter to move to b")
    assert handed["persistent-variables"] == {"count": 41}
    assert handed["epoch"] > first_epoch
    async with manager.client() as ctl:
        assert (await ctl.nodes())["a"]["status"] == "dead"
    # The stale copy on a is refused and a no longer sees it.
    with pytest.raises(Forbidden):
        await a.report("counter", variables={"count": 42}, epoch=first_epoch)
    assert await a.poll() == {}
    assert (await project(manager, "counter"))["persistent-variables"] == {"count": 41}
    for node in (a, b):
        await node.close()


async def test_unschedulable_until_a_node_fits(manager: RunningManager) -> None:
    small = await SimNode.join(manager.url, "small", ram=100)
    async with manager.client() as ctl:
        answer = await ctl.add("big", URL, ram=2000)
    info = answer["projects"]["big"]
    assert info["status"] == "unschedulable"
    assert "2000 MB RAM" in info["reason"]
    big = await SimNode.join(manager.url, "big-node", ram=8000)

    async def placed() -> bool:
        return bool((await project(manager, "big"))["node"] == "big-node")

    await wait_for(placed, what="big to be placed on big-node")
    for node in (small, big):
        await node.close()


async def test_reset_restores_initial_variables_and_refuses_late_reports(
    manager: RunningManager,
) -> None:
    a = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        await ctl.add("counter", URL, {"count": 0})
        old_epoch = (await a.poll())["counter"]["epoch"]
        await a.report("counter", variables={"count": 50})
        await ctl.reset(["counter"])
        seen = (await a.poll())["counter"]
        assert seen["epoch"] == old_epoch + 1
        assert seen["persistent-variables"] == {"count": 0}
        with pytest.raises(Conflict, match="stale epoch"):
            await a.report("counter", variables={"count": 51}, epoch=old_epoch)
        assert (await ctl.status(["counter"]))["counter"]["persistent-variables"] == {"count": 0}
    await a.close()


async def test_stop_start_restart_reach_the_node(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        await ctl.add("counter", URL)
        await ctl.add("other", URL.replace("counter", "other"))
        assert (await a.poll())["counter"]["desired"] == "running"
        await ctl.stop(["counter"])
        seen = await a.poll()
        assert seen["counter"]["desired"] == "stopped"
        assert seen["other"]["desired"] == "running"
        await ctl.start([])  # empty list = all, as in the seed
        assert {p["desired"] for p in (await a.poll()).values()} == {"running"}
        before = (await a.poll())["counter"]["restart"]
        await ctl.restart(["counter"])
        assert (await a.poll())["counter"]["restart"] == before + 1
        with pytest.raises(NotFound, match="did you mean 'counter'"):
            await ctl.stop(["countr"])
    await a.close()


async def test_add_without_start_is_stopped_and_unplaced(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        answer = await ctl.add("later", URL, start=False)
        assert answer["projects"]["later"]["status"] == "stopped"
        assert await a.poll() == {}
        await ctl.start(["later"])
        assert (await a.poll())["later"]["desired"] == "running"
    await a.close()


async def test_remove_needs_the_url_and_then_the_node_drops_it(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        await ctl.add("counter", URL)
        await a.poll()
        with pytest.raises(Conflict, match="does not match"):
            await ctl.remove("counter", "file:///wrong.git")
        await ctl.remove("counter", URL)
        assert await ctl.status() == {}
    assert await a.poll() == {}
    with pytest.raises(NotFound):
        await a.report("counter", url=URL)
    await a.close()


async def test_drain_moves_projects_after_the_node_stops_them(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        await ctl.add("counter", URL, {"count": 0})
        b = await SimNode.join(manager.url, "b")
        await a.poll()
        await a.report("counter", variables={"count": 7})
        await ctl.drain("a")
        # a is asked to stop it; it stays a's until a confirms with its final variables.
        assert (await a.poll())["counter"]["desired"] == "stopped"
        assert await b.poll() == {}
        await a.report("counter", status="stopped", variables={"count": 8})
        handed = (await b.poll())["counter"]
        assert handed["persistent-variables"] == {"count": 8}
        assert handed["desired"] == "running"
        assert await a.poll() == {}
        nodes = await ctl.nodes()
        assert nodes["a"]["drained"] is True and nodes["a"]["status"] == "alive"
        # A drained node takes nothing new.
        await ctl.add("second", URL.replace("counter", "second"))
        assert (await ctl.status(["second"]))["second"]["node"] == "b"
    for node in (a, b):
        await node.close()


async def test_leave_moves_projects_at_once(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        await ctl.add("counter", URL, {"count": 0}, exclusive=True)
        b = await SimNode.join(manager.url, "b")
        await a.poll()
        await a.report("counter", status="stopped", variables={"count": 3})
        await a.client.node_leave(a.name, a.token)
        # No waiting for node-timeout: it is b's right away.
        handed = (await b.poll())["counter"]
        assert handed["persistent-variables"] == {"count": 3}
        assert (await ctl.nodes())["a"]["status"] == "dead"
    for node in (a, b):
        await node.close()


async def test_balance_when_a_node_joins(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        for i in range(4):
            await ctl.add(f"p{i}", f"file:///srv/p{i}.git")
        seen = await a.poll()
        for name in seen:
            await a.report(name)
        b = await SimNode.join(manager.url, "b")

        async def balanced() -> bool:
            # a confirms each stop it is asked for, as an agent would.
            for name, assignment in (await a.poll()).items():
                if assignment["desired"] == "stopped":
                    await a.report(name, status="stopped")
            await b.poll()
            nodes = await ctl.nodes()
            return len(nodes["a"]["projects"]) == 2 and len(nodes["b"]["projects"]) == 2

        await wait_for(balanced, timeout=10, what="2 and 2 projects")
    for node in (a, b):
        await node.close()


async def test_long_poll_wakes_on_a_change(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "a")
    assert await a.poll() == {}
    poll = asyncio.create_task(a.poll(wait=30))

    async def held() -> bool:
        return bool(manager.state.cluster.polls.waiters.get("a"))

    await wait_for(held, what="the manager to hold a's poll")
    async with manager.client() as ctl:
        await ctl.add("counter", URL)
    # Held for up to 30 s; a change answers it at once.
    seen = await asyncio.wait_for(poll, timeout=5)
    assert "counter" in seen
    await a.close()


async def test_long_poll_does_not_miss_a_change_between_polls(manager: RunningManager) -> None:
    a = await SimNode.join(manager.url, "a")
    await a.poll()
    async with manager.client() as ctl:
        await ctl.add("counter", URL)
    seen = await asyncio.wait_for(a.poll(wait=30), timeout=5)
    assert "counter" in seen
    await a.close()


async def test_events_deliver_a_snapshot_then_changes(manager: RunningManager) -> None:
    node = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        feed = ctl.events()
        snapshot = await asyncio.wait_for(anext(feed), timeout=5)
        assert snapshot["type"] == "snapshot"
        assert "a" in snapshot["nodes"]
        assert snapshot["projects"] == {}
        async with manager.client() as other:
            await other.add("counter", URL)
        change = await asyncio.wait_for(anext(feed), timeout=5)
        assert change["type"] == "changes"
        assert change["projects"]["counter"]["node"] == "a"
        async with manager.client() as other:
            await other.remove("counter", URL)
        removal = await asyncio.wait_for(anext(feed), timeout=5)
        assert removal["projects"] == {"counter": None}
        await feed.aclose()
    await node.close()


async def test_events_need_the_controller_token(manager: RunningManager) -> None:
    async with manager.client(token="wrong") as ctl:
        with pytest.raises(Unauthorized):
            await anext(ctl.events())


async def test_health_and_metrics(manager: RunningManager) -> None:
    node = await SimNode.join(manager.url, "a")
    async with manager.client() as ctl:
        await ctl.add("counter", URL)
        health = await ctl.health()
        assert health["status"] == "ok"
        assert health["nodes"]["alive"] == 1
        assert health["projects"]["pending"] == 1
        text = await ctl.metrics()
    assert 'syncopate_nodes{status="alive"} 1' in text
    assert 'syncopate_http_requests_total{route="/controller",status="200"} 1' in text
    assert "syncopate_http_request_duration_seconds_count" in text
    # The add placed one project, and its time is counted (the fleet benchmark's figure).
    assert "syncopate_placements_total 1\n" in text
    placing = float(text.split("\nsyncopate_placement_seconds_total ", 1)[1].split()[0])
    assert 0 < placing < 1
    # Transactions committed (the join, the add...); on PostgreSQL, the time spent waiting for
    # the server too (the add's transaction waited for it at least).
    assert float(text.split("\nsyncopate_store_commits_total ", 1)[1].split()[0]) >= 2
    waited = text.split("\nsyncopate_store_wait_seconds_total ", 1)
    if manager.state.store.shared:
        assert float(waited[1].split()[0]) > 0
    else:
        assert len(waited) == 1, "SQLite has no server to wait for"
    assert manager.token not in text and node.token not in text
    await node.close()
