"""The manager's /events feed: one WebSocket, and following it across lost connections.

    async for message in client.follow_events(logs=["counter"]):
        if isinstance(message, FeedDropped):
            say(drop_text(message))  # lost the manager (connection refused); trying again in 2 s
        else:
            handle(message)

`EventSocket` opens the feed (aiohttp, imported only here: the agent never opens one).
`follow` reconnects after each drop with a short backoff and tells the caller about the drop
with a `FeedDropped` value, so every follower (the CLI's `logs --follow` and `command send
--wait`, the TUI's tables and log view) handles drops the same way. `NumberedLines` takes each
numbered output line of a project once, as the `logs` answer and /events `logs` messages
overlap.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import ssl
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from syncopate.errors import (
    ConnectionFailed,
    PinMismatch,
    RequestError,
    SyncopateError,
    TooManyAttempts,
    Unauthorized,
    Unreachable,
    request_error_for,
)

if TYPE_CHECKING:
    import aiohttp

Message = dict[str, Any]
# After a drop: quick at first (a manager restart takes a second), then every 5 s.
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)
# The close code of an /events stream whose controller token was revoked (or rotated): the
# manager's routes/feeds.py closes with it, and a follower says so.
EVENTS_REVOKED_CODE = 4001


class FeedClosed(ConnectionFailed):
    """The manager closed the event feed (it stopped or restarted)."""


class FeedRevoked(FeedClosed):
    """The manager closed the event feed because its controller token was revoked."""


@dataclass(frozen=True)
class FeedDropped:
    """The feed was lost (`error` says why); `follow` connects again after `delay` seconds."""

    error: SyncopateError
    delay: float


# After a refused token, the next try waits at least this long: the manager counts each refusal
# from an address as a guess and locks the address out after 5 in a minute (DESIGN §15), which
# would lock out every agent and client at this address too.
REFUSED_DELAY = 30.0


def reconnect_delay(
    delays: Sequence[float], attempt: int, error: SyncopateError | None = None
) -> float:
    """The wait before reconnection number `attempt` (0 first); the last delay repeats.

    After a refused token at least REFUSED_DELAY; after a 429 at least its Retry-After.
    """
    delay = delays[min(attempt, len(delays) - 1)]
    if isinstance(error, Unauthorized):
        delay = max(delay, REFUSED_DELAY)
    if isinstance(error, TooManyAttempts):
        delay = max(delay, error.retry_after)
    return delay


async def follow(
    open_feed: Callable[[], AsyncGenerator[Message, None]],
    *,
    on_connect: Callable[[Message], Awaitable[None]] | None = None,
    delays: Sequence[float] = RECONNECT_DELAYS,
    retry: tuple[type[SyncopateError], ...] = (ConnectionFailed,),
) -> AsyncGenerator[Message | FeedDropped, None]:
    """The messages of feed after feed from `open_feed`, with a FeedDropped between two.

    Each connection starts with its snapshot: `on_connect(snapshot)` runs first (to fetch what
    the feed does not repeat, such as kept output), then the snapshot and the changes are
    yielded. An error of a `retry` type, from the feed or from `on_connect`, is a drop: it is
    yielded as a FeedDropped and the feed is opened again after its delay (the delays grow
    while connections fail, and start over once one works). Other errors propagate; so does
    a drop, when the caller raises its `error`.
    """
    attempt = 0
    while True:
        feed = open_feed()
        try:
            snapshot = await anext(feed)
            if on_connect is not None:
                await on_connect(snapshot)
            attempt = 0
            yield snapshot
            async for message in feed:
                yield message
            raise FeedClosed("the event feed closed")
        except retry as exc:
            error: SyncopateError = exc
        finally:
            await feed.aclose()
        delay = reconnect_delay(delays, attempt, error)
        attempt += 1
        yield FeedDropped(error, delay)
        await asyncio.sleep(delay)


def handshake_refusal(status: int, retry_after: str | None) -> str:
    """Why /events refused to open, in words (a refused handshake carries no JSON reason)."""
    if status == 401:
        return "/events refused the controller token (revoked, rotated or wrong)"
    if status == 429:
        when = f"; try again in {retry_after} s" if retry_after else ""
        return f"/events refused: too many wrong controller tokens from this address{when}"
    return f"/events refused: HTTP {status}"


class EventSocket:
    """Opens /events for one client; the HTTP session is made on first use, kept till close."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        fingerprint: bytes | None = None,
        ca: ssl.SSLContext | None = None,
    ) -> None:
        self.url, self.token = url, token
        self._fingerprint, self._ca = fingerprint, ca
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open_session(self) -> aiohttp.ClientSession:
        import aiohttp

        ssl_option: ssl.SSLContext | aiohttp.Fingerprint | bool = True
        if self._fingerprint is not None:
            ssl_option = _pin_check(self._fingerprint)
        elif self._ca is not None:
            ssl_option = self._ca
        connector = aiohttp.TCPConnector(
            ssl=ssl_option,
            # A TLS connection refused for its fingerprint is closed gracefully and left
            # open until the peer answers; let close() abort it. (Python 3.12.7+ fixed
            # the underlying leak, and aiohttp warns if the option is set there.)
            enable_cleanup_closed=sys.version_info < (3, 12, 7),
        )
        return aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None, connect=10)
        )

    async def messages(self, logs: Iterable[str] = ()) -> AsyncGenerator[Message, None]:
        """Messages from /events: a snapshot first, then batches of changes.

        With `logs` (project names), also `{"type": "logs", "project", "seq", "lines"}`
        messages carrying each batch of those projects' new output lines. Ends by raising
        ConnectionFailed when the feed closes.
        """
        import aiohttp

        if self._session is None:
            self._session = self._open_session()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            ws = await self._session.ws_connect(
                self.url + "/events",
                headers=headers,
                heartbeat=20,
                params=[("logs", name) for name in logs],
            )
        except aiohttp.WSServerHandshakeError as exc:
            wait = exc.headers.get("Retry-After") if exc.headers else None  # on a 429
            raise request_error_for(
                exc.status, handshake_refusal(exc.status, wait), retry_after=wait
            ) from None
        except aiohttp.ServerFingerprintMismatch as exc:
            from syncopate.http_client import mismatch_message

            raise PinMismatch(
                f"the certificate of {self.url} does not match the pinned fingerprint: "
                + mismatch_message(exc.expected, getattr(exc, "der", None))
            ) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise ConnectionFailed(
                f"cannot verify the certificate of {self.url}: {exc.certificate_error}; "
                "pass --ca-file or --fingerprint"
            ) from None
        except (aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
            raise Unreachable(
                f"cannot reach the manager at {self.url} ({connection_reason(exc)})"
            ) from None
        closed_with = None  # the code of the manager's close frame
        async with ws:
            while True:
                message = await ws.receive()
                if message.type == aiohttp.WSMsgType.TEXT:
                    yield json.loads(message.data)
                elif message.type == aiohttp.WSMsgType.CLOSE:
                    # Read from the frame, not ws.close_code: over TLS the manager may be gone
                    # before the answer to its close is sent, and that turns close_code to 1006.
                    closed_with = message.data
                    break
                elif message.type in (
                    aiohttp.WSMsgType.ERROR,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.CLOSING,
                ):
                    break
        if EVENTS_REVOKED_CODE in (closed_with, ws.close_code):
            raise FeedRevoked(f"{self.url} closed the event feed: the controller token was revoked")
        raise FeedClosed(f"the event feed from {self.url} closed")


def connection_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words (`connection refused`), not the library's text
    (`Cannot connect to host 127.0.0.1:8470 ssl:default [Connect call failed ...]`)."""
    cause = getattr(exc, "os_error", None) or exc  # aiohttp's connector errors wrap the OSError
    if isinstance(cause, TimeoutError):
        return "timed out"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return "unknown host"
    if isinstance(cause, ConnectionResetError):
        return "connection reset"
    if isinstance(cause, OSError) and cause.errno:
        return os.strerror(cause.errno).lower()  # `no route to host`, `network is unreachable`
    return "the connection closed"


def drop_text(drop: FeedDropped) -> str:
    """A drop as a person reads it: `lost the manager (connection refused); trying again in
    2 s`."""
    error = drop.error
    if isinstance(error, Unreachable):
        # Its message is `cannot reach the manager at URL (why)`: the why is what is new.
        message = str(error)
        why = message[message.rfind("(") + 1 : -1] if message.endswith(")") else message
    elif isinstance(error, RequestError):
        why = f"it answered {error.status}: {error}"
    elif isinstance(error, FeedRevoked):
        why = "it closed the feed: the controller token was revoked"
    elif isinstance(error, FeedClosed):
        why = "it closed the connection"
    else:
        why = str(error)
    return f"lost the manager ({why}); trying again in {drop.delay:g} s"


class NumberedLines:
    """Which of a project's numbered output lines are new: each is taken once, in order.

    The same lines can come twice (the kept ones and the feed overlap); `seq` numbers the
    first line of each batch, as the `logs` answer and /events `logs` messages do.
    """

    def __init__(self) -> None:
        self.next_seq: int | None = None

    def take(self, seq: int, lines: list[str]) -> tuple[int, list[str]]:
        """(how many lines were lost before these, the lines not seen yet)."""
        skipped = 0
        if self.next_seq is not None:
            skipped = max(0, seq - self.next_seq)
            lines = lines[max(0, self.next_seq - seq) :]
            seq = max(seq, self.next_seq)
        self.next_seq = seq + len(lines)
        return skipped, lines


def _pin_check(pin: bytes) -> aiohttp.Fingerprint:
    """aiohttp's fingerprint check, taking a pin of the certificate's key as well as of the
    whole certificate (`syncopate.pins.pin_matches`); aiohttp checks it before the upgrade
    request is written."""
    import aiohttp

    from syncopate.pins import pin_matches

    class PinCheck(aiohttp.Fingerprint):
        def check(self, transport: asyncio.Transport) -> None:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is None:
                return
            der = ssl_object.getpeercert(binary_form=True)
            if not der or not pin_matches(self.fingerprint, der):
                host, port, *_ = transport.get_extra_info("peername")
                mismatch = aiohttp.ServerFingerprintMismatch(
                    self.fingerprint, hashlib.sha256(der or b"").digest(), host, port
                )
                mismatch.der = der  # type: ignore[attr-defined]  # for the message
                raise mismatch

    return PinCheck(pin)
