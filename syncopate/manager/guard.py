"""The credential throttle at the door: every route that takes a credential goes through here.

`throttle_middleware` refuses a locked-out address on those routes (429 with Retry-After)
before its request is even read; `guarded(request, check, ...)` wraps the one call of a
route that checks the credential: a locked address is refused before the check (a request read
while the lock began), a wrong credential (Unauthorized) counts a failure for the address, a
right one clears its count. Anything else the check raises (a malformed field, an unknown
device after a right token) is not about the credential and counts nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from aiohttp import web

from syncopate.errors import TooManyAttempts, Unauthorized
from syncopate.manager.context import STATE, client_address
from syncopate.manager.throttle import CredentialThrottle

# Every route that takes a credential (README, "The API"); /health, /metrics and
# /openapi.json take none.
CREDENTIAL_ROUTES = frozenset(
    {
        "/node-initialize",
        "/node-status",
        "/node-update",
        "/node-command-result",
        "/node-leave",
        "/controller",
        "/events",
        "/hw_supervisor",
    }
)

P = ParamSpec("P")
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def refuse_if_locked(throttle: CredentialThrottle, address: str, now: float) -> None:
    """Raise TooManyAttempts (429) when `address` is locked out; its Retry-After in seconds."""
    wait = throttle.retry_after(address, now)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise TooManyAttempts(
            f"too many wrong passwords or tokens from {address} "
            f"({throttle.max_failures} within {throttle.window:g}s): this address is locked "
            f"out; try again in {seconds}s",
            seconds,
        )


def guarded(request: web.Request, check: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`check(*args, **kwargs)` (a credential check) under the manager's throttle."""
    throttle = request.app[STATE].throttle
    address, now = client_address(request), time.monotonic()
    refuse_if_locked(throttle, address, now)
    try:
        result = check(*args, **kwargs)
    except Unauthorized:
        throttle.failed(address, now)
        raise
    throttle.succeeded(address)
    return result


@web.middleware
async def throttle_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a locked-out address on a credential route before its request is read."""
    if request.path not in CREDENTIAL_ROUTES:
        return await handler(request)
    throttle = request.app[STATE].throttle
    address = client_address(request)
    refuse_if_locked(throttle, address, time.monotonic())
    response = await handler(request)
    if response.status == 429 and "Retry-After" not in response.headers:
        # A route that answers its errors itself (/hw_supervisor) turned the refusal into a
        # response: the header still says when to come back.
        wait = throttle.retry_after(address, time.monotonic())
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response
