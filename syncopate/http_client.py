"""A small HTTP/1.1 client on asyncio streams: what `ManagerClient` sends its requests with.

Why not aiohttp's client: importing it costs a process about 14 MB of RSS (its C parser,
multidict/yarl, SSL contexts built at import time), a third of a node agent's budget on a
Raspberry Pi, to send a few small JSON requests. The manager speaks plain HTTP/1.1, so this
speaks just that: one request at a time per connection, kept-alive connections reused, bodies
framed by Content-Length, chunked encoding or the end of the connection. WebSockets (the
`/events` feed) still go through aiohttp, imported only by the code that opens one.

Failures raise `HttpError` subclasses; `client.py` turns them into the errors users see.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_LINE = 16 * 1024  # one status or header line
MAX_HEADERS = 100
MAX_BODY = 64 * 2**20  # the largest answer accepted (the manager's biggest are a few MB)
IDLE_REUSE = 15.0  # seconds a kept-alive connection is reused; servers drop them later (75 s)


class HttpError(Exception):
    """The request could not be completed: no answer to read."""


class CannotConnect(HttpError):
    """No connection could be made (refused, unreachable, name unknown, timed out)."""


class CertificateMismatch(HttpError):
    """The server's certificate is not the pinned one."""


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
    idle_since: float = field(default_factory=time.monotonic)

    def reusable(self) -> bool:
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and time.monotonic() - self.idle_since < IDLE_REUSE
        )

    def abort(self) -> None:
        # abort(), not close(): nothing more is owed to a peer we are giving up on, and a TLS
        # close would wait for its answer.
        self.writer.transport.abort()


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
            # The pin replaces the chain check: the certificate is compared byte for byte.
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
        head = self._head(method, path, body, headers or {})
        async with self._slots:
            connection = await self._connection()
            try:
                async with asyncio.timeout(timeout):
                    connection.writer.write(head + (body or b""))
                    await connection.writer.drain()
                    response, keep = await _read_response(connection.reader, method)
            except TimeoutError:
                connection.abort()
                raise ConnectionLost(f"no answer within {timeout:g} s") from None
            except (OSError, asyncio.IncompleteReadError) as exc:
                connection.abort()
                raise ConnectionLost(_describe(exc)) from None
            except BaseException:
                connection.abort()
                raise
            if keep:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.abort()
            return response

    def _head(self, method: str, path: str, body: bytes | None, extra: dict[str, str]) -> bytes:
        fields = {
            "Host": self.target.host_header,
            "User-Agent": self._user_agent,
            "Accept": "application/json",
            **extra,
        }
        if body is not None:
            fields["Content-Length"] = str(len(body))
        lines = [f"{method} {self.target.base_path}{path} HTTP/1.1"]
        for name, value in fields.items():
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

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
                    limit=MAX_LINE,
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
            if not der or not hmac.compare_digest(hashlib.sha256(der).digest(), self._fingerprint):
                connection.abort()
                raise CertificateMismatch("the certificate does not match the pinned fingerprint")
        return connection


async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[Response, bool]:
    """One response from the stream, and whether the connection can carry another."""
    while True:
        version, status = _status_line(await _line(reader))
        headers = await _headers(reader)
        if not 100 <= status < 200:
            break  # an interim 1xx answer is followed by the real one
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    if method == "HEAD" or status in (204, 304):
        return Response(status, headers, b""), keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Response(status, headers, await _chunked(reader)), keep
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise BadResponse(f"invalid Content-Length {length[:40]!r}")
        size = int(length)
        if size > MAX_BODY:
            raise BadResponse(f"an answer of {size} bytes is over the {MAX_BODY} byte limit")
        return Response(status, headers, await reader.readexactly(size)), keep
    # Neither: the body runs until the server closes the connection.
    body = await reader.read(MAX_BODY + 1)
    while body and len(body) <= MAX_BODY and not reader.at_eof():
        more = await reader.read(MAX_BODY + 1 - len(body))
        if not more:
            break
        body += more
    if len(body) > MAX_BODY:
        raise BadResponse(f"an answer over the {MAX_BODY} byte limit")
    return Response(status, headers, body), False


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        return (await reader.readuntil(b"\r\n"))[:-2]
    except asyncio.LimitOverrunError:
        raise BadResponse(f"a header line over {MAX_LINE} bytes") from None


def _status_line(line: bytes) -> tuple[str, int]:
    parts = line.split(b" ", 2)
    try:
        version = parts[0].decode("ascii")
        status = int(parts[1])
    except (IndexError, ValueError, UnicodeDecodeError):
        raise BadResponse(f"not an HTTP status line: {line[:60]!r}") from None
    if version not in ("HTTP/1.1", "HTTP/1.0") or not 100 <= status <= 999:
        raise BadResponse(f"not an HTTP/1.x status line: {line[:60]!r}")
    return version, status


async def _headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = await _line(reader)
        if not line:
            return headers
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise BadResponse(f"not a header line: {line[:60]!r}")
        headers[name.lower()] = value.strip()
    raise BadResponse(f"more than {MAX_HEADERS} headers")


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_text = (await _line(reader)).split(b";", 1)[0].strip()
        if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
            raise BadResponse(f"invalid chunk size {size_text[:40]!r}")
        size = int(size_text, 16)
        if len(body) + size > MAX_BODY:
            raise BadResponse(f"an answer over the {MAX_BODY} byte limit")
        if size == 0:
            await _headers(reader)  # trailers, ignored
            return bytes(body)
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise BadResponse("a chunk is not followed by CRLF")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the connection closed before the answer was complete"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__
