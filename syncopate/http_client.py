"""A small HTTP/1.1 client on asyncio streams and h11: what `ManagerClient` sends requests with.

Why not aiohttp's client: importing it costs a process about 14 MB of RSS (its C parser,
multidict/yarl, SSL contexts built at import time), a third of a node agent's budget on a
Raspberry Pi, to send a few small JSON requests. h11 (pure Python, what httpx is built on) does
the HTTP/1.1 framing — Content-Length, chunked, until-close, keep-alive — so this module only
moves bytes: one request at a time per connection, kept-alive connections reused. WebSockets
(the `/events` feed) still go through aiohttp, imported only by the code that opens one.

Failures raise `HttpError` subclasses; `client.py` turns them into the errors users see.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11

from syncopate.errors import ConnectionFailed
from syncopate.pins import PIN_PREFIX, key_pin, parse_pin, pin_matches

MAX_HEAD = 16 * 1024  # the status line and headers of one answer
READ_SIZE = 64 * 1024
MAX_HEADERS = 100
MAX_BODY = 64 * 2**20  # the largest answer accepted (the manager's biggest are a few MB)
IDLE_REUSE = 15.0  # seconds a kept-alive connection is reused; servers drop them later (75 s)


class HttpError(Exception):
    """The request could not be completed: no answer to read."""


class CannotConnect(HttpError):
    """No connection could be made (refused, unreachable, name unknown, timed out)."""


class CertificateMismatch(HttpError):
    """The server's certificate is not the pinned one; the message names both fingerprints."""


class CertificateInvalid(HttpError):
    """The server's certificate could not be verified."""


class BadResponse(HttpError):
    """The server answered something that is not HTTP/1.x, or too much of it."""


class ConnectionLost(HttpError):
    """The connection broke or timed out while the request was under way."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case; a repeated header keeps its last value
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Target:
    """Where requests go: parsed once from the base URL."""

    tls: bool
    host: str
    port: int
    base_path: str  # the URL's path without its trailing slash ("" for the root)

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"{url!r} must not carry a query, a fragment or credentials")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{url!r} has an invalid port") from None
        tls = parts.scheme == "https"
        return cls(tls, parts.hostname, port or (443 if tls else 80), parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: h11.Connection = field(
        default_factory=lambda: h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    )
    idle_since: float = field(default_factory=time.monotonic)
    _hung_up: bool = False  # the last read found the end of the stream

    def reusable(self) -> bool:
        return (
            self.protocol.our_state is h11.IDLE
            and not self.reader.at_eof()
            and not self.writer.is_closing()
            and time.monotonic() - self.idle_since < IDLE_REUSE
        )

    def abort(self) -> None:
        # abort(), not close(): nothing more is owed to a peer we are giving up on, and a TLS
        # close would wait for its answer.
        self.writer.transport.abort()

    async def exchange(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> Response:
        """Send one request and read its answer; the connection is left ready for the next
        one when both sides allow it (`reusable`)."""
        protocol = self.protocol
        data = protocol.send(h11.Request(method=method, target=target, headers=headers))
        if body:
            data += protocol.send(h11.Data(data=body))
        data += protocol.send(h11.EndOfMessage())
        self.writer.write(data)
        await self.writer.drain()
        response: h11.Response | None = None
        content = bytearray()
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Response):
                response = event
                _check_head(event.headers)
            elif isinstance(event, h11.Data):
                content += event.data
                if len(content) > MAX_BODY:
                    raise BadResponse(f"an answer over the {MAX_BODY} byte limit")
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise asyncio.IncompleteReadError(bytes(content), None)
            # an h11.InformationalResponse (1xx) is followed by the real answer
        assert response is not None  # h11 yields the Response before any Data
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
        return Response(
            response.status_code,
            {name.decode("latin-1"): value.decode("latin-1") for name, value in response.headers},
            bytes(content),
        )

    async def _next_event(self) -> object:
        while True:
            try:
                event = self.protocol.next_event()
            except h11.RemoteProtocolError as exc:
                if self.protocol.their_state is h11.ERROR and self._hung_up:
                    # The peer hung up before a whole answer (plain HTTP to a TLS port, a
                    # body cut short): the connection was lost, not spoken to in nonsense.
                    raise asyncio.IncompleteReadError(b"", None) from None
                raise BadResponse(f"not an HTTP/1.x answer: {_detail(exc)}") from None
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(READ_SIZE)
            self._hung_up = not data
            self.protocol.receive_data(data)


def _check_head(headers: Sequence[tuple[bytes, bytes]]) -> None:
    """Refuse an answer whose head is too large to be the manager's, or too large a body."""
    # h11 bounds only a head still incomplete; one that arrived whole is checked here.
    if len(headers) > MAX_HEADERS:
        raise BadResponse(f"more than {MAX_HEADERS} headers")
    if sum(len(name) + len(value) + 4 for name, value in headers) > MAX_HEAD:
        raise BadResponse(f"not an HTTP/1.x answer: {_TOO_LONG}")
    for name, value in headers:
        if name == b"content-length" and int(value) > MAX_BODY:
            raise BadResponse(f"an answer of {int(value)} bytes is over the {MAX_BODY} byte limit")


_TOO_LONG = f"its status line and headers are over {MAX_HEAD} bytes"


def _detail(exc: h11.RemoteProtocolError) -> str:
    text = str(exc)
    if "buffer" in text.lower() and "long" in text.lower():
        return _TOO_LONG
    return text


class HttpClient:
    """Requests to one server, over at most `limit` connections at a time."""

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        fingerprint: bytes | None = None,
        connect_timeout: float = 10.0,
        limit: int = 32,
        user_agent: str = "syncopate",
    ) -> None:
        self.target = Target.parse(url)
        if self.target.tls and ssl_context is None:
            ssl_context = ssl.create_default_context()
        if fingerprint is not None:
            # The pin replaces the chain check: the certificate's key (or the certificate) is
            # compared with it right after the handshake, before a byte of a request is sent.
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
        self._ssl = ssl_context if self.target.tls else None
        self._fingerprint = fingerprint
        self._connect_timeout = connect_timeout
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_Connection] = []
        self._user_agent = user_agent

    async def close(self) -> None:
        """Close the idle connections (requests under way close theirs when they end)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.abort()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Response:
        """Send one request and read the whole answer within `timeout` seconds."""
        fields = self._headers(headers or {}, body)
        target = f"{self.target.base_path}{path}"
        async with self._slots:
            connection = await self._connection()
            try:
                async with asyncio.timeout(timeout):
                    response = await connection.exchange(method, target, fields, body)
            except TimeoutError:
                connection.abort()
                raise ConnectionLost(f"no answer within {timeout:g} s") from None
            except (OSError, asyncio.IncompleteReadError) as exc:
                connection.abort()
                raise ConnectionLost(_describe(exc)) from None
            except BaseException:
                connection.abort()
                raise
            if connection.reusable():
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.abort()
            return response

    def _headers(self, extra: dict[str, str], body: bytes | None) -> list[tuple[str, str]]:
        fields = {
            "Host": self.target.host_header,
            "User-Agent": self._user_agent,
            "Accept": "application/json",
            **extra,
        }
        if body is not None:
            fields["Content-Length"] = str(len(body))
        for name, value in fields.items():
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} holds a line break")
        return list(fields.items())

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable():
                return connection
            connection.abort()
        return await self._connect()

    async def _connect(self) -> _Connection:
        target = self.target
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    target.host,
                    target.port,
                    ssl=self._ssl,
                    server_hostname=target.host if self._ssl else None,
                    limit=READ_SIZE,
                )
        except ssl.SSLCertVerificationError as exc:
            raise CertificateInvalid(exc.verify_message or str(exc)) from None
        except TimeoutError:
            raise CannotConnect(f"no connection within {self._connect_timeout:g} s") from None
        except OSError as exc:
            raise CannotConnect(_describe(exc)) from None
        connection = _Connection(reader, writer)
        if self._fingerprint is not None:
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            if not der or not pin_matches(self._fingerprint, der):
                connection.abort()
                raise CertificateMismatch(mismatch_message(self._fingerprint, der))
        return connection


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the connection closed before the answer was complete"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__


def mismatch_message(pin: bytes, der: bytes | None) -> str:
    """What a refused pin says: the pin expected and the key fingerprint presented."""
    try:
        presented = key_pin(der) if der else "no certificate"
    except ValueError:
        presented = "a certificate that cannot be read"
    return (
        f"expected {PIN_PREFIX}{pin.hex()}, the server presented {presented}; "
        "nothing was sent to it"
    )


def parse_fingerprint(fingerprint: str) -> bytes:
    """The 32 bytes of a `sha256:<hex>` pin (colons and upper case allowed)."""
    try:
        return parse_pin(fingerprint)
    except ValueError as exc:
        raise ConnectionFailed(str(exc)) from None


def ca_context(ca_file: str) -> ssl.SSLContext:
    """A client context that trusts the CAs in `ca_file` only."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionFailed(f"cannot load CA file {ca_file}: {exc}") from None
