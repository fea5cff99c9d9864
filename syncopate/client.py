"""The async client of the manager's API, used by the node agent, the CLI, the TUI and tests.

    async with ManagerClient("https://manager:8470", token=..., fingerprint="sha256:...") as c:
        projects = await c.status()

Refusals raise the `RequestError` subclass for the HTTP status, with the manager's reason; a
manager that cannot be reached raises `ConnectionFailed` naming the URL.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any, Self

import aiohttp

from syncopate.errors import ConnectionFailed, ProtocolError, request_error_for

INFO_FIELDS = ("failure-reasoning", "update-info", "request-information", "error")


def ssl_option(
    url: str, ca_file: str | None = None, fingerprint: str | None = None
) -> ssl.SSLContext | aiohttp.Fingerprint | bool:
    """How to verify the manager: a pinned `sha256:` fingerprint, a CA file, or the system store."""
    if not url.startswith("https://"):
        return True
    if fingerprint:
        digest = fingerprint.removeprefix("sha256:").replace(":", "").strip()
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            raise ConnectionFailed(
                f"fingerprint {fingerprint!r} is not sha256:<64 hex digits>"
            ) from None
        if len(raw) != 32:
            raise ConnectionFailed(f"fingerprint {fingerprint!r} is not a SHA-256 digest")
        return aiohttp.Fingerprint(raw)
    if ca_file:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionFailed(f"cannot load CA file {ca_file}: {exc}") from None
    return True


class ManagerClient:
    """One manager, one HTTP session. Use as an async context manager."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        ca_file: str | None = None,
        fingerprint: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ConnectionFailed(f"manager URL {url!r} must start with http:// or https://")
        self.token = token
        self.timeout = timeout
        self._ssl = ssl_option(self.url, ca_file, fingerprint)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self._ssl,
                limit=32,
                # A TLS connection refused for its fingerprint is closed gracefully and left
                # open until the peer answers; let close() abort it. (Python 3.12.7+ fixed
                # the underlying leak, and aiohttp warns if the option is set there.)
                enable_cleanup_closed=sys.version_info < (3, 12, 7),
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, connect=10)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # the transport ----------------------------------------------------------------------------
    async def post(
        self, path: str, body: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """POST a JSON body; return the JSON answer or raise the error it stands for."""
        session = self._open()
        limit = aiohttp.ClientTimeout(total=timeout or self.timeout)
        try:
            async with session.post(self.url + path, json=body, timeout=limit) as response:
                return await self._answer(response)
        except aiohttp.ServerFingerprintMismatch:
            raise ConnectionFailed(
                f"the certificate of {self.url} does not match the pinned fingerprint"
            ) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise ConnectionFailed(
                f"cannot verify the certificate of {self.url}: {exc.certificate_error}; "
                "pass --ca-file or --fingerprint"
            ) from None
        except (aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
            raise ConnectionFailed(
                f"cannot reach the manager at {self.url} ({_describe(exc)})"
            ) from None

    async def get(self, path: str) -> aiohttp.ClientResponse:
        session = self._open()
        try:
            response = await session.get(
                self.url + path, timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        except (aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
            raise ConnectionFailed(
                f"cannot reach the manager at {self.url} ({_describe(exc)})"
            ) from None
        return response

    async def _answer(self, response: aiohttp.ClientResponse) -> dict[str, Any]:
        text = await response.text()
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if response.status >= 400:
                raise request_error_for(response.status, f"HTTP {response.status}: {text[:200]}")
            raise ProtocolError(f"{self.url} answered something that is not a JSON object")
        if response.status >= 400:
            message = next(
                (str(data[k]) for k in INFO_FIELDS if data.get(k)), f"HTTP {response.status}"
            )
            error = request_error_for(response.status, message)
            raise error
        return data

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
        }
        if labels:
            body["labels"] = labels
        if agent_version:
            body["agent-version"] = agent_version
        data = await self.post("/node-initialize", body)
        try:
            return str(data["name"]), str(data["access-token"])
        except KeyError:
            raise ProtocolError("the manager's join answer has no name or access-token") from None

    async def node_status(self, name: str, token: str, wait: float | None = None) -> dict[str, Any]:
        """This node's assignments; with `wait`, held until they change (a long poll)."""
        body: dict[str, Any] = {"name": name, "access-token": token}
        if wait:
            body["wait"] = wait
        return await self.post("/node-status", body, timeout=(wait or 0) + self.timeout)

    async def node_update(self, name: str, token: str, report: dict[str, Any]) -> dict[str, Any]:
        """Report on one project; `report` holds the project fields (project-name, status, ...)."""
        return await self.post("/node-update", {**report, "name": name, "access-token": token})

    async def node_leave(self, name: str, token: str) -> dict[str, Any]:
        """Tell the manager this node stopped its projects and is going away."""
        return await self.post("/node-leave", {"name": name, "access-token": token})

    # controller side --------------------------------------------------------------------------
    async def controller(self, action: str, **fields: Any) -> dict[str, Any]:
        """Send a controller action with the controller token."""
        body: dict[str, Any] = {"action": action, **fields}
        if self.token:
            body["access-token"] = self.token
        return await self.post("/controller", body)

    async def add(
        self,
        name: str,
        url: str,
        initial_variables: dict[str, Any] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Add a project; options: command, ref, ram, disk, exclusive, start."""
        project = {"name": name, "url": url, "initial_variables": initial_variables or {}}
        project.update({k: v for k, v in options.items() if v is not None})
        return await self.controller("add", project=project)

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

    # probes and feeds -------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        response = await self.get("/health")
        async with response:
            return await self._answer(response)

    async def metrics(self) -> str:
        response = await self.get("/metrics")
        async with response:
            return await response.text()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Messages from /events: a snapshot first, then batches of changes."""
        session = self._open()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            ws = await session.ws_connect(self.url + "/events", headers=headers, heartbeat=20)
        except aiohttp.WSServerHandshakeError as exc:
            raise request_error_for(exc.status, f"/events refused: HTTP {exc.status}") from None
        except (aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
            raise ConnectionFailed(
                f"cannot reach the manager at {self.url} ({_describe(exc)})"
            ) from None
        async with ws:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    yield json.loads(message.data)
                elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                    break
        raise ConnectionFailed(f"the event feed from {self.url} closed")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text
