"""Test helpers: a real manager on loopback, protocol-level simulated nodes, waiting helpers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from syncopate.client import ManagerClient
from syncopate.manager.app import make_app, make_runner
from syncopate.manager.context import STATE, ManagerSettings, ManagerState
from syncopate.manager.server import rotate_controller_token
from syncopate.manager.sql_store import open_store

PASSWORD = "test-password"
T = TypeVar("T")


async def wait_for(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Call `check` until it returns something truthy; fail with `what` after `timeout` seconds.

    A check may answer None while it waits, so the result's type drops the None.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last: {last!r}")


@dataclass
class RunningManager:
    """A manager serving on 127.0.0.1 in this event loop."""

    url: str
    token: str
    data_dir: Path
    runner: web.AppRunner
    state: ManagerState
    store_url: str | None = None  # its PostgreSQL database; None: SQLite in the data dir

    def client(self, token: str | None = None) -> ManagerClient:
        return ManagerClient(self.url, token=self.token if token is None else token)

    def end_lockouts(self) -> None:
        """Forget every lockout of the credential throttle, as if its time had passed: a test
        that locked 127.0.0.1 out on purpose looks at the manager from that address after."""
        self.state.throttle = replace(self.state.throttle, _failures={}, _locked_until={})

    def db_rows(self, table: str) -> dict[str, dict[str, Any]]:
        """Rows of the store as another process would read them (fresh connection)."""
        rows = self.db_query(f"SELECT name, data FROM {table}")
        return {name: json.loads(data) for name, data in rows}

    def db_query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A query's rows, read from the store as another process would (fresh connection,
        whichever database; `?` for parameters)."""
        if self.store_url is not None:
            import psycopg

            with psycopg.connect(self.store_url) as pg:
                cursor = pg.execute(sql.replace("?", "%s"), parameters)
                return [tuple(row) for row in cursor]
        import sqlite3

        db = sqlite3.connect(self.data_dir / "syncopate.db")
        try:
            return [tuple(row) for row in db.execute(sql, parameters)]
        finally:
            db.close()


@asynccontextmanager
async def running_manager(
    data_dir: Path,
    node_timeout: float = 1.0,
    port: int = 0,
    keep_token: bool = False,
    store_url: str | None = None,
    **settings: Any,
) -> AsyncIterator[RunningManager]:
    """Start a real manager on an ephemeral port (or `port`); stop it on exit.

    A new controller token each time, unless `keep_token` (a restart: clients keep theirs).
    `store_url`: a PostgreSQL database to keep its state in (else SQLite in `data_dir`).
    """
    store = open_store(data_dir, store_url)
    controller = data_dir / "controller.json"
    if keep_token and controller.exists():
        token = json.loads(controller.read_text(encoding="utf-8"))["token"]
    else:
        token = rotate_controller_token(data_dir, store)
    app = make_app(
        ManagerSettings(
            data_dir=data_dir, password=PASSWORD, node_timeout=node_timeout, **settings
        ),
        store,
    )
    runner = make_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield RunningManager(
            f"http://127.0.0.1:{port}", token, data_dir, runner, app[STATE], store_url
        )
    finally:
        await runner.cleanup()


@dataclass
class SimNode:
    """A node that speaks the protocol by hand: join, poll, report."""

    client: ManagerClient
    name: str
    token: str
    seen: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def join(
        cls,
        url: str,
        name: str = "",
        storage: float = 10_000,
        ram: float = 4_000,
        agent_version: str | None = "sim",
    ) -> SimNode:
        """Join as an agent (with `agent-version`), or as a seed-dialect node with None."""
        client = ManagerClient(url)
        got_name, token = await client.initialize(
            PASSWORD, name, storage=storage, ram=ram, agent_version=agent_version
        )
        return cls(client, got_name, token)

    async def poll(self, wait: float | None = None) -> dict[str, Any]:
        answer = await self.client.node_status(self.name, self.token, wait=wait)
        self.seen = answer["projects"]
        return self.seen

    async def report(
        self,
        project: str,
        status: str = "running",
        variables: dict[str, Any] | None = None,
        epoch: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Report on a project it was assigned, with the epoch it last saw unless given."""
        seen = self.seen.get(project, {})
        body: dict[str, Any] = {
            "project-name": project,
            "project-url": extra.pop("url", seen.get("project-url", "")),
            "status": status,
            "disk-usage": extra.pop("disk", 1.0),
            "ram-usage": extra.pop("ram", 2.0),
        }
        if variables is not None:
            body["persistent-variables"] = variables
        use_epoch = epoch if epoch is not None else seen.get("epoch")
        if use_epoch is not None:
            body["epoch"] = use_epoch
        body.update(extra)
        return await self.client.node_update(self.name, self.token, body)

    async def close(self) -> None:
        await self.client.close()
