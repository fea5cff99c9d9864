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

import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Self

from syncopate import __version__
from syncopate.errors import (
    AGENT_HEADER,
    ConnectionFailed,
    HungUp,
    PinMismatch,
    ProtocolError,
    SyncopateError,
    TokenRefused,
    Unauthorized,
    Unavailable,
    Unreachable,
    request_error_for,
)
from syncopate.feed import RECONNECT_DELAYS, EventSocket, FeedDropped, follow
from syncopate.http_client import (
    BadResponse,
    CannotConnect,
    CertificateInvalid,
    CertificateMismatch,
    ConnectionLost,
    HttpClient,
    HttpError,
    Response,
    ca_context,
    parse_fingerprint,
)
from syncopate.replies import answer_of


class ManagerClient:
    """One manager, or several sharing a database (`URL1,URL2`, DESIGN §13), and the
    connections to them. Use as an async context manager.

    With several URLs it talks to one at a time: a request that cannot connect goes on to the
    next URL at once (it never reached the first), and any other sign that the manager is gone
    (a lost connection, no answer, a 503) makes the next URL the one the next request uses, and
    raises as with one manager: the caller that retries (the agent, the TUI) reaches the next.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        ca_file: str | None = None,
        fingerprint: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.urls = manager_urls(url)
        self._at = 0  # the URL in use
        self.token = token
        self.timeout = timeout
        tls = any(u.startswith("https://") for u in self.urls)
        self._fingerprint = parse_fingerprint(fingerprint) if tls and fingerprint else None
        self._ca = ca_context(ca_file) if tls and ca_file and not self._fingerprint else None
        try:
            self._https = [
                HttpClient(
                    u,
                    ssl_context=self._ca,
                    fingerprint=self._fingerprint,
                    user_agent=f"syncopate/{__version__}",
                )
                for u in self.urls
            ]
        except ValueError as exc:
            raise ConnectionFailed(f"manager URL: {exc}") from None
        self._feeds = [
            EventSocket(u, token, fingerprint=self._fingerprint, ca=self._ca) for u in self.urls
        ]

    @property
    def url(self) -> str:
        """The manager URL in use."""
        return self.urls[self._at]

    @property
    def _http(self) -> HttpClient:
        return self._https[self._at]

    @property
    def _events(self) -> EventSocket:
        return self._feeds[self._at]

    def next_manager(self) -> None:
        """Use the next manager URL from now on (the first again after the last)."""
        self._at = (self._at + 1) % len(self.urls)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        for http in self._https:
            await http.close()
        for feed in self._feeds:
            await feed.close()

    # the transport ----------------------------------------------------------------------------
    async def post(
        self, path: str, body: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """POST a JSON body; return the JSON answer or raise the error it stands for."""
        payload = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        response = await self._request("POST", path, payload, headers, timeout)
        try:
            return answer_of(self.url, response)
        except Unavailable:
            self.next_manager()  # a standby whose leader is away, or a refused write
            raise

    async def get(self, path: str, *, timeout: float | None = None) -> Response:
        """GET a path; the whole answer, whatever its status."""
        return await self._request("GET", path, None, {}, timeout)

    async def _request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> Response:
        # Every request says it is ours, so the node routes answer with real HTTP statuses
        # rather than the seed dialect's HTTP 200 (DESIGN §10).
        headers = {AGENT_HEADER: __version__, **headers}
        for _ in range(len(self.urls) - 1):
            try:
                return await self._request_one(method, path, body, headers, timeout)
            except Unreachable as exc:
                self.next_manager()
                if not isinstance(exc.__cause__, CannotConnect):
                    raise  # it may have been delivered: the caller decides whether to retry
        return await self._request_one(method, path, body, headers, timeout)

    async def _request_one(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> Response:
        try:
            return await self._http.request(
                method, path, body, headers=headers, timeout=timeout or self.timeout
            )
        except CertificateMismatch as exc:
            raise PinMismatch(
                f"the certificate of {self.url} does not match the pinned fingerprint: {exc}"
            ) from None
        except CertificateInvalid as exc:
            raise ConnectionFailed(
                f"cannot verify the certificate of {self.url}: {exc}; "
                "pass --ca-file or --fingerprint"
            ) from None
        except BadResponse as exc:
            raise ProtocolError(f"{self.url} answered something that is not HTTP: {exc}") from None
        except ConnectionLost as exc:
            url = self.url
            if len(self.urls) > 1:
                self.next_manager()
            raise HungUp(f"cannot reach the manager at {url} ({exc})") from None
        except CannotConnect as exc:
            raise Unreachable(f"cannot reach the manager at {self.url} ({exc})") from exc
        except HttpError as exc:
            url = self.url
            if len(self.urls) > 1:
                self.next_manager()
            raise Unreachable(f"cannot reach the manager at {url} ({exc})") from None

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

    async def _messages(self, logs: list[str]) -> AsyncGenerator[dict[str, Any], None]:
        feed = self._events
        try:
            async for message in feed.messages(logs):
                yield message
        except ConnectionFailed:
            if feed is self._events:
                self.next_manager()  # the feed is opened again on the next manager
            raise

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


def manager_urls(given: str) -> list[str]:
    """The manager URLs in `URL1,URL2,...` (one, or several managers sharing a database);
    ConnectionFailed naming a bad one."""
    urls = [part.strip().rstrip("/") for part in given.split(",") if part.strip()]
    if not urls:
        raise ConnectionFailed(f"manager URL {given!r}: give http(s)://HOST:PORT")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConnectionFailed(f"manager URL {url!r} must start with http:// or https://")
    return urls
