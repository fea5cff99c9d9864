"""The async client of the manager's API, used by the node agent, the CLI, the TUI and tests.

    async with ManagerClient("https://manager:8470", token=..., fingerprint="sha256:...") as c:
        projects = await c.status()

Refusals raise the `RequestError` subclass for the HTTP status, with the manager's reason; a
manager that cannot be reached raises `Unreachable` (a `ConnectionFailed`) naming the URL, and a
refused controller token `TokenRefused` (an `Unauthorized`). A 503 (the manager's database
refused a write; nothing changed) raises `Unavailable`, which is both: a caller that retries an
unreachable manager retries it too. The /events feed, and following it, is `syncopate.feed`'s.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from typing import Any

from syncopate.errors import (
    ConnectionFailed,
    ProtocolError,
    SyncopateError,
    TokenRefused,
    Unauthorized,
    request_error_for,
)
from syncopate.feed import RECONNECT_DELAYS, FeedDropped, follow
from syncopate.manager_transport import ManagerTransport
from syncopate.replies import answer_of


class ManagerClient(ManagerTransport):
    """One manager, or several sharing a database (`URL1,URL2`, DESIGN §13): its API.
    Use as an async context manager. (How it reaches them: manager_transport.py.)"""

    # node side --------------------------------------------------------------------------------
    async def initialize(
        self,
        password: str,
        preferred_name: str = "",
        storage: float = 0.0,
        ram: float = 0.0,
        labels: dict[str, str] | None = None,
        agent_version: str | None = None,
    ) -> tuple[str, str]:
        """Join the cluster; return (name, access token)."""
        body: dict[str, Any] = {
            "preferred-name": preferred_name,
            "syncopate-password": password,
            "storage": storage,
            "ram": ram,
            **({"labels": labels} if labels else {}),
            **({"agent-version": agent_version} if agent_version else {}),
        }
        data = await self.post("/node-initialize", body)
        try:
            return str(data["name"]), str(data["access-token"])
        except KeyError:
            raise ProtocolError("the manager's join answer has no name or access-token") from None

    async def node_status(
        self,
        name: str,
        token: str,
        wait: float | None = None,
        metrics: dict[str, Any] | None = None,
        reports: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """This node's assignments (held until they change with `wait`: a long poll); `metrics`
        (cpu, load, temperature, uptime) tell the manager how the node is doing; `reports` on
        its projects (node_update's bodies) ride on the poll, taken before the hold."""
        body: dict[str, Any] = {
            "name": name,
            "access-token": token,
            **({"wait": wait} if wait else {}),
            **({"metrics": metrics} if metrics is not None else {}),
            **({"reports": reports} if reports else {}),
        }
        return await self.post("/node-status", body, timeout=(wait or 0) + self.timeout)

    async def node_update(self, name: str, token: str, report: dict[str, Any]) -> dict[str, Any]:
        """Report on one project; `report` holds the project fields (project-name, status, ...)."""
        return await self.post("/node-update", {**report, "name": name, "access-token": token})

    async def node_command_result(
        self,
        name: str,
        token: str,
        command_id: int,
        response: str,
        exit_code: int | None,
        duration: float | None,
    ) -> dict[str, Any]:
        """Send a command's response (the node collected it in its poll answer)."""
        body: dict[str, Any] = {
            "name": name,
            "access-token": token,
            "id": command_id,
            "response": response,
            "exit-code": exit_code,
            "duration": duration,
        }
        return await self.post("/node-command-result", body)

    async def node_leave(self, name: str, token: str) -> dict[str, Any]:
        """Tell the manager this node stopped its projects and is going away."""
        return await self.post("/node-leave", {"name": name, "access-token": token})

    # controller side --------------------------------------------------------------------------
    async def controller(self, action: str, **fields: Any) -> dict[str, Any]:
        """Send a controller action with the controller token."""
        body: dict[str, Any] = {"action": action, **fields}
        if self.token:
            body["access-token"] = self.token
        try:
            return await self.post("/controller", body)
        except Unauthorized as exc:
            # /controller's only 401 is a refused controller token.
            raise TokenRefused(exc.message, code=exc.code, **exc.details) from None

    async def add(
        self,
        name: str,
        url: str,
        initial_variables: dict[str, Any] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Add a project; options: command, ref, ram, disk, exclusive, start, env, secrets."""
        project = {"name": name, "url": url, "initial_variables": initial_variables or {}}
        project.update({k: v for k, v in options.items() if v is not None})
        return await self.controller("add", project=project)

    async def set_project(self, name: str, **changes: Any) -> dict[str, Any]:
        """Change a project in place; changes: url, command, ref, ram, disk, exclusive, env,
        unset-env, secrets, unset-secrets (those left out or None stay as they are)."""
        project = {"name": name, **{k: v for k, v in changes.items() if v is not None}}
        return await self.controller("set", project=project)

    async def set_variables(
        self, names: Iterable[str], values: dict[str, Any], *, every: bool = False
    ) -> dict[str, Any]:
        """Write persistent variables into the named projects, or every project (`every`)."""
        fields: dict[str, Any] = {"projects": list(names), "variables": values}
        if every:
            fields["all"] = True
        return await self.controller("set-variables", **fields)

    async def remove(self, name: str, url: str) -> dict[str, Any]:
        return await self.controller("remove", project={"name": name, "url": url})

    async def start(self, names: Iterable[str] = ()) -> dict[str, Any]:
        return await self.controller("start", projects=list(names))

    async def stop(self, names: Iterable[str] = ()) -> dict[str, Any]:
        return await self.controller("stop", projects=list(names))

    async def restart(self, names: Iterable[str] = ()) -> dict[str, Any]:
        return await self.controller("restart", projects=list(names))

    async def reset(self, names: Iterable[str] = ()) -> dict[str, Any]:
        return await self.controller("reset", projects=list(names))

    async def status(self, names: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
        """Projects keyed by name (all when none are named)."""
        data = await self.controller("status", projects=list(names))
        projects: dict[str, dict[str, Any]] = data.get("projects", {})
        return projects

    async def nodes(self) -> dict[str, dict[str, Any]]:
        data = await self.controller("nodes")
        nodes: dict[str, dict[str, Any]] = data.get("nodes", {})
        return nodes

    async def drain(self, node: str) -> dict[str, Any]:
        return await self.controller("node-drain", node=node)

    async def undrain(self, node: str) -> dict[str, Any]:
        return await self.controller("node-undrain", node=node)

    async def forget(self, node: str) -> dict[str, Any]:
        return await self.controller("node-forget", node=node)

    async def label(
        self, node: str, labels: dict[str, str] | None = None, remove: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Set (`labels`) and remove (`remove`, keys) a node's labels; its projects follow."""
        return await self.controller(
            "node-label", node=node, labels=dict(labels or {}), remove=list(remove)
        )

    async def logs(self, project: str, lines: int = 200) -> dict[str, Any]:
        """A project's last `lines` (1-1000) output lines kept by the manager, oldest first.

        The answer holds `project`, `node` (where it is placed, or None), `lines`, and `seq`:
        the number of the first line, comparable with the `seq` of /events `logs` messages.
        """
        return await self.controller("logs", projects=[project], lines=lines)

    async def rollout(self, project: str, *, retry: bool = False) -> dict[str, Any]:
        """A project's rollout (its `projects` entry: commit, good-commit, bad-commit,
        bad-reason); `retry` lets its node try the bad commit again."""
        return await self.controller("rollout", projects=[project], retry=retry)

    # the command channel ----------------------------------------------------------------------
    async def command_send(
        self,
        nodes: Iterable[str] = (),
        code: str = "",
        *,
        all_nodes: bool = False,
        interpreter: str = "python",
        timeout: float | None = None,
        pickup: float | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Send a program to the named nodes (or every live one); the new commands by id."""
        fields: dict[str, Any] = {"code": code, "interpreter": interpreter}
        if all_nodes:
            fields["all"] = True
        else:
            fields["nodes"] = list(nodes)
        if timeout is not None:
            fields["timeout"] = timeout
        if pickup is not None:
            fields["pickup"] = pickup
        data = await self.controller("command-send", **fields)
        commands: dict[str, dict[str, Any]] = data.get("commands", {})
        return commands

    async def command_list(
        self,
        node: str | None = None,
        state: str | None = None,
        user: str | None = None,
        limit: int | None = None,
        before: int | None = None,
    ) -> dict[str, Any]:
        """Commands newest first: the answer's `commands` (by id), `more` and `next-before`."""
        filters = {"node": node, "state": state, "user": user, "limit": limit, "before": before}
        return await self.controller(
            "command-list", **{k: v for k, v in filters.items() if v is not None}
        )

    async def _one_command(self, action: str, **fields: Any) -> dict[str, Any]:
        data = await self.controller(action, **fields)
        commands = data.get("commands") or {}
        if len(commands) != 1:
            raise ProtocolError(f"the manager's {action} answer does not hold one command")
        command: dict[str, Any] = next(iter(commands.values()))
        return command

    async def command_show(self, command_id: int) -> dict[str, Any]:
        return await self._one_command("command-show", id=command_id)

    async def command_analyze(self, command_id: int, analysis: str) -> dict[str, Any]:
        return await self._one_command("command-analyze", id=command_id, analysis=analysis)

    async def command_cancel(self, command_id: int) -> dict[str, Any]:
        return await self._one_command("command-cancel", id=command_id)

    # probes and feeds -------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        return answer_of(self.url, await self.get("/health"))

    async def metrics(self) -> str:
        response = await self.get("/metrics")
        if response.status >= 400:
            raise request_error_for(response.status, f"/metrics: HTTP {response.status}")
        return response.text()

    def events(self, logs: Iterable[str] = ()) -> AsyncGenerator[dict[str, Any], None]:
        """Messages from /events: a snapshot, then batches of changes; with `logs` (project
        names), also `{"type": "logs", "project", "seq", "lines"}` with their new output."""
        return self._messages(list(logs))

    def follow_events(
        self,
        logs: Iterable[str] = (),
        *,
        on_connect: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
        delays: Sequence[float] = RECONNECT_DELAYS,
        retry: tuple[type[SyncopateError], ...] = (ConnectionFailed,),
    ) -> AsyncGenerator[dict[str, Any] | FeedDropped, None]:
        """/events across lost connections: each drop comes as a `FeedDropped`, then the feed
        is opened again after its delay (see `syncopate.feed.follow`)."""
        names = list(logs)
        return follow(lambda: self.events(names), on_connect=on_connect, delays=delays, retry=retry)
