"""A standby manager serves every route by forwarding it to the leader (leadership.py).

The request goes on as it came (method, path and query, headers but the hop-by-hop ones, body)
and the answer comes back as the leader gave it, streamed: a long poll is held by the leader
for as long as it holds it, and `/events` (a websocket) is piped both ways. The leader learns
who asked from `X-Forwarded-For`, which it believes only beside `X-Syncopate-Forwarded`, a
proof derived from the managers' shared secrets.key (`forward_proof`): anyone else's
X-Forwarded-For is ignored, so nobody escapes the credential throttle by naming another address.

A leader that cannot be reached (it died; another will lead within seconds) is a 503 saying so:
nothing reached it, so nodes and clients retry, or move to another manager URL. A leader that
took the request and then failed is a 502: what it did is not known. Over HTTPS the leader is
checked by the pin of the managers' shared key, as the agents check it.

A forwarded answer names the leader (`Syncopate-Leader`): a client that was given the leader's
URL too goes there directly from then on (manager_transport.py), so a standby forwards a
client's first request, not all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable

import aiohttp
from aiohttp import WSMsgType, web

from syncopate.errors import LEADER_HEADER
from syncopate.fast_json import dumps
from syncopate.manager.secret_box import SecretBox
from syncopate.pins import key_pin
from syncopate.protocol import MAX_WAIT_SECONDS

log = logging.getLogger("syncopate.manager")

PROOF_HEADER = "X-Syncopate-Forwarded"
FOR_HEADER = "X-Forwarded-For"
# Not forwarded: they describe one connection, not the request (RFC 9110 §7.6.1), or are
# aiohttp's to set.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
        PROOF_HEADER,
        FOR_HEADER,
    )
)


PROOF_PURPOSE = b"syncopate forwarded request"


def forward_proof(box: SecretBox) -> str:
    """The proof a forwarding manager sends: only holders of secrets.key can make it."""
    return box.derived(PROOF_PURPOSE)


def forwarded_for(request: web.Request, proof: str | None) -> str | None:
    """The address a fellow manager forwarded this request for; None when it was not
    forwarded, or not by a manager holding the key (`proof`: what ours make; None: not on a
    shared database, nobody forwards)."""
    sent = request.headers.get(PROOF_HEADER)
    if proof is None or sent is None or not hmac.compare_digest(sent, proof):
        return None
    return request.headers.get(FOR_HEADER)


def unfinished(leader: str) -> web.Response:
    """The leader took the request and did not answer it: what it did is not known (a 503
    would say nothing changed, and a retry could do it twice)."""
    reason = (
        f"the leader ({leader}) took the request and did not answer; whether it was done is "
        "not known: look before trying again"
    )
    body = {"request-status": "failure", "code": 502, "failure-reasoning": reason}
    return web.Response(body=dumps(body), status=502, content_type="application/json")


def unavailable(leader: str | None, why: str) -> web.Response:
    reason = f"this manager stands by and the leader ({leader or 'none yet'}) {why}; retry"
    body = {"request-status": "failure", "code": 503, "failure-reasoning": reason}
    return web.Response(
        body=dumps(body), status=503, content_type="application/json", headers={"Retry-After": "1"}
    )


class KeyPin(aiohttp.Fingerprint):
    """Accept the leader's certificate by its public key's pin (the managers share their key:
    their data dirs are copies), checked before anything is sent, as the agents pin it."""

    def __init__(self, pin: str) -> None:
        super().__init__(bytes(32))  # aiohttp checks the length only; `check` is ours
        self.pin = pin

    def check(self, transport: asyncio.Transport) -> None:
        if not transport.get_extra_info("sslcontext"):
            return
        der = transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        if key_pin(der) != self.pin:
            host, port, *_ = transport.get_extra_info("peername")
            raise aiohttp.ServerFingerprintMismatch(self.fingerprint, b"", host, port)


class Forwarder:
    """Forwards requests to the leader of the moment (`leader()` names it, or None).

    `own_url`: this manager's (never forwarded to); `pin`: the managers' key pin over HTTPS.
    """

    def __init__(
        self,
        leader: Callable[[], str | None],
        proof: str,
        own_url: str,
        pin: str | None = None,
    ) -> None:
        self.leader = leader
        self.proof = proof
        self.own_url = own_url
        self.ssl: KeyPin | bool = KeyPin(pin) if pin else True
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No total timeout: a held poll or an /events stream lasts as long as the leader
            # keeps it; a leader that does not connect in 5 s is as good as gone.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
            # No cap on connections: each held poll forwarded holds one for its hold, and
            # aiohttp's default of 100 queued the rest of a fleet's polls behind them.
            connector = aiohttp.TCPConnector(limit=0, ssl=self.ssl)
            self._session = aiohttp.ClientSession(
                timeout=timeout, connector=connector, auto_decompress=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self, request: web.Request) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers[FOR_HEADER] = request.remote or "unknown"
        headers[PROOF_HEADER] = self.proof
        return headers

    async def handle(self, request: web.Request) -> web.StreamResponse:
        leader = self.leader()
        if leader is None or leader.rstrip("/") == self.own_url.rstrip("/"):
            return unavailable(None, "is not known yet")
        if forwarded_for(request, self.proof) is not None:
            # Forwarded by another standby that took this one for the leader: once is enough.
            return unavailable(leader, "is another manager")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, leader)
        body = await request.read()
        response: web.StreamResponse | None = None
        try:
            async with self._client().request(
                request.method,
                leader.rstrip("/") + request.path_qs,
                headers=self._headers(request),
                data=body,
                allow_redirects=False,
                # A poll is held at most MAX_WAIT_SECONDS: silence much longer is a dead link.
                timeout=aiohttp.ClientTimeout(sock_read=MAX_WAIT_SECONDS + 30),
            ) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for name, value in upstream.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        response.headers.add(name, value)
                response.headers[LEADER_HEADER] = leader
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.info("could not forward %s %s to %s: %s", request.method, request.path, leader, exc)
            if response is not None and response.prepared:
                # The answer had begun: cut the connection, the client sees it end unfinished.
                if request.transport is not None:
                    request.transport.close()
                return response
            if isinstance(exc, aiohttp.ClientConnectorError):
                return unavailable(leader, "did not answer")  # nothing reached it
            return unfinished(leader)

    async def _websocket(self, request: web.Request, leader: str) -> web.StreamResponse:
        """Pipe a websocket (`/events`) between the client and the leader."""
        url = leader.rstrip("/") + request.path_qs
        # The handshake's own headers are this hop's: the standby's client makes its own.
        headers = {
            k: v for k, v in self._headers(request).items() if not k.lower().startswith("sec-")
        }
        try:
            upstream = await self._client().ws_connect(url, headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            # The leader refused the feed (a wrong token, say): the same refusal, passed on.
            reason = f"/events refused by the leader: {exc.message}"
            body = {"request-status": "failure", "code": exc.status, "failure-reasoning": reason}
            return web.Response(
                body=dumps(body), status=exc.status, content_type="application/json"
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.info("could not forward the websocket %s to %s: %s", request.path, leader, exc)
            return unavailable(leader, "did not answer")
        downstream = web.WebSocketResponse()
        await downstream.prepare(request)

        async def pipe(
            source: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
            sink: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
        ) -> None:
            async for message in source:
                if message.type == WSMsgType.TEXT:
                    await sink.send_str(message.data)
                elif message.type == WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
                else:
                    break
            await sink.close(code=source.close_code or 1000)

        tasks = [
            asyncio.create_task(pipe(upstream, downstream)),
            asyncio.create_task(pipe(downstream, upstream)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await upstream.close()
            await downstream.close()
        return downstream
