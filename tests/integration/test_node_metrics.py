"""A node's metrics for real: a real agent's polls carry them to a real manager, which shows the
latest in the `nodes` answer, `node list` and /metrics, and keeps them out of its database."""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

from syncopate.manager.answers import NODE_GAUGES
from tests.helpers import RunningManager, SimNode, wait_for
from tests.integration.test_agent import Fleet
from tests.integration.test_cli import run_cli


async def nodes(manager: RunningManager) -> dict[str, dict[str, Any]]:
    async with manager.client() as ctl:
        return await ctl.nodes()


def series(text: str, gauge: str, node: str) -> float | None:
    """The value of `gauge{node="NODE"}` in a /metrics text; None when it has no such line."""
    found = re.search(rf'^{gauge}{{node="{re.escape(node)}"}} (\S+)$', text, re.MULTILINE)
    return None if found is None else float(found.group(1))


async def test_an_agents_polls_carry_its_metrics_to_nodes_and_metrics(fleet: Fleet) -> None:
    manager = fleet.manager
    await fleet.start_agent("pi-1")

    async def measured() -> dict[str, Any] | None:
        metrics: dict[str, Any] | None = (await nodes(manager))["pi-1"]["metrics"]
        return metrics

    metrics = await wait_for(measured, what="pi-1's metrics in the nodes answer")
    assert set(metrics) == {"cpu", "load", "temperature", "uptime"}
    assert 0 <= metrics["cpu"] <= 100
    assert metrics["load"] >= 0
    assert metrics["uptime"] > 0
    assert metrics["temperature"] is None or -50 < metrics["temperature"] < 150
    async with manager.client() as ctl:
        text = await ctl.metrics()
    for gauge, key in NODE_GAUGES:
        if key == "temperature" and metrics[key] is None:
            assert series(text, gauge, "pi-1") is None  # no sensor here: no series
        else:
            assert series(text, gauge, "pi-1") is not None, (gauge, text)
    # Memory only: the stored node has no metrics.
    assert "metrics" not in manager.db_rows("nodes")["pi-1"]

    # `node list` shows its CPU use.
    env = {**os.environ, "SYNCOPATE_MANAGER": manager.url, "SYNCOPATE_TOKEN": manager.token}
    done = await asyncio.to_thread(run_cli, "node", "list", env=env)
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()[:2]
    assert "CPU" in header.split()
    assert re.search(r"\s\d{1,3}%\s", row), done.stdout


async def test_the_latest_poll_wins_and_a_seed_node_has_none(fleet: Fleet) -> None:
    manager = fleet.manager
    sim = await SimNode.join(manager.url, "pi-2")
    seed = await SimNode.join(manager.url, "pi-3", agent_version=None)
    try:
        first = {"cpu": 20.0, "load": 1.5, "temperature": 61.2, "uptime": 100.0}
        await sim.client.node_status(sim.name, sim.token, metrics=first)
        assert (await nodes(manager))["pi-2"]["metrics"] == first
        later = {"cpu": 35.5, "load": 0.25, "temperature": None, "uptime": 130.0}
        await sim.client.node_status(sim.name, sim.token, metrics=later)
        await seed.poll()
        answer = await nodes(manager)
        assert answer["pi-2"]["metrics"] == later
        assert answer["pi-3"]["metrics"] is None
        # A poll without metrics leaves the latest ones as they were.
        await sim.poll()
        assert (await nodes(manager))["pi-2"]["metrics"] == later
        async with manager.client() as ctl:
            text = await ctl.metrics()
        assert series(text, "syncopate_node_cpu_percent", "pi-2") == 35.5
        assert series(text, "syncopate_node_load1", "pi-2") == 0.25
        assert series(text, "syncopate_node_temperature_celsius", "pi-2") is None
        assert series(text, "syncopate_node_uptime_seconds", "pi-2") == 130.0
        assert 'node="pi-3"' not in text
    finally:
        await sim.close()
        await seed.close()
