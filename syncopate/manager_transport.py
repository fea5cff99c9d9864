"""How a `ManagerClient` reaches its manager: one URL, or several managers sharing a database
(`URL1,URL2`, DESIGN §13), over `HttpClient` (requests) and `EventSocket` (/events).

With several URLs it talks to one at a time: a request that cannot connect goes on to the next
URL at once (it never reached the first), and any other sign that the manager is gone (a lost
connection, no answer, a 503) makes the next URL the one the next request uses, and raises as
with one manager: the caller that retries (the agent, the TUI, `follow_events`) reaches the next.
An answer a standby forwarded names the leader: if that is one of the URLs (and did not fail us
in the last minute), it is the one in use from then on (a request to the leader is one hop;
through a standby, two).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from typing import Any, Self

from syncopate import __version__
from syncopate.errors import (
    AGENT_HEADER,
    LEADER_HEADER,
    ConnectionFailed,
    HungUp,
    PinMismatch,
    ProtocolError,
    SyncopateError,
    Unavailable,
    Unreachable,
)
from syncopate.feed import EventSocket
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

# A URL that failed us is not followed to (a standby naming it the leader) for this long.
FOLLOW_AFTER_FAILURE = 60.0


class ManagerTransport:
    """The connections to one manager or several (see the module's docstring)."""

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
        self._failed_at: dict[int, float] = {}  # monotonic time of each URL's latest failure
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
        finally:
            self._follow(response)

    async def get(self, path: str, *, timeout: float | None = None) -> Response:
        """GET a path; the whole answer, whatever its status."""
        response = await self._request("GET", path, None, {}, timeout)
        self._follow(response)
        return response

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
                if not isinstance(exc.__cause__, CannotConnect):
                    # It may have been delivered: the caller decides whether to retry (the
                    # next URL is the one in use already).
                    raise
                self.next_manager()
        return await self._request_one(method, path, body, headers, timeout)

    async def _request_one(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> Response:
        at = self._at
        try:
            return await self._request_at(method, path, body, headers, timeout)
        except SyncopateError:
            self._failed_at[at] = time.monotonic()  # not to be followed to for a while
            raise

    async def _request_at(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> Response:
        several = len(self.urls) > 1
        try:
            return await self._http.request(
                method, path, body, headers=headers, timeout=timeout or self.timeout
            )
        except CertificateMismatch as exc:
            url = self.url
            if several:
                self.next_manager()
            raise PinMismatch(
                f"the certificate of {url} does not match the pinned fingerprint: {exc}"
            ) from None
        except CertificateInvalid as exc:
            url = self.url
            if several:
                self.next_manager()
            raise ConnectionFailed(
                f"cannot verify the certificate of {url}: {exc}; pass --ca-file or --fingerprint"
            ) from None
        except BadResponse as exc:
            raise ProtocolError(f"{self.url} answered something that is not HTTP: {exc}") from None
        except ConnectionLost as exc:
            url = self.url
            if several:
                self.next_manager()
            raise HungUp(f"cannot reach the manager at {url} ({exc})") from None
        except CannotConnect as exc:
            raise Unreachable(f"cannot reach the manager at {self.url} ({exc})") from exc
        except HttpError as exc:
            url = self.url
            if several:
                self.next_manager()
            raise Unreachable(f"cannot reach the manager at {url} ({exc})") from None

    def _follow(self, response: Response) -> None:
        """After a good answer: use the leader it names (a standby forwarded it), if that is
        one of our URLs (only those: an answer never sends a client anywhere it was not told
        to go) and it has not failed us in the last FOLLOW_AFTER_FAILURE seconds (a leader
        its standby reaches and we do not would take us back and forth)."""
        leader = response.headers.get(LEADER_HEADER.lower())
        if leader is None or len(self.urls) < 2 or not 200 <= response.status < 300:
            return
        try:
            at = self.urls.index(leader.strip().rstrip("/"))
        except ValueError:
            return
        failed = self._failed_at.get(at)
        if failed is None or time.monotonic() - failed >= FOLLOW_AFTER_FAILURE:
            self._at = at

    async def _messages(self, logs: list[str]) -> AsyncGenerator[dict[str, Any], None]:
        feed = self._events
        try:
            async for message in feed.messages(logs):
                yield message
        except ConnectionFailed:
            if feed is self._events:
                self.next_manager()  # the feed is opened again on the next manager
            raise


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
