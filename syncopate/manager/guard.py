"""The credential throttle at the door: every route that takes a credential goes through here.

A wrong credential counts against (the client's address, the credential's scope): `join`,
`controller` or `node:<name>` (manager/throttle.py). `guarded(request, scope, check, ...)` wraps
the one call of a route that checks the credential: an address locked out of that scope is
refused before the check (429 naming what is locked), a wrong credential (Unauthorized) counts
a failure, a right one counts nothing (it does not clear the count either). Anything else the
check raises (a malformed field, an unknown device after a right token) is not about the
credential and counts nothing.

`refuse_locked_route` (called by the error middleware) refuses even earlier, before the body
is read, where the route alone says the scope: /node-initialize (join), /controller and /events
(controller). The node routes name
their node in the body, and /hw_supervisor's scope depends on which credential its `pword`
is, so those are refused by `guarded` (or devices.py) once the body is parsed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from aiohttp import web

from syncopate.errors import TooManyAttempts, Unauthorized
from syncopate.manager.context import STATE, client_address
from syncopate.manager.throttle import CONTROLLER, JOIN, CredentialThrottle, scope_credentials

log = logging.getLogger("syncopate.manager")

# The routes whose scope is known before the body is read: refused by the middleware.
ROUTE_SCOPES = {"/node-initialize": JOIN, "/controller": CONTROLLER, "/events": CONTROLLER}

P = ParamSpec("P")
T = TypeVar("T")


def refuse_if_locked(throttle: CredentialThrottle, address: str, scope: str, now: float) -> None:
    """Raise TooManyAttempts (429) when `address` is locked out of `scope`; its Retry-After in
    whole seconds."""
    wait = throttle.retry_after(address, scope, now)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise TooManyAttempts(
            f"too many wrong {scope_credentials(scope)} from {address}; try again in {seconds} s",
            seconds,
        )


def count_failure(request: web.Request, scope: str) -> None:
    """A wrong credential of `scope` from the request's address; the one that locks the
    address out is logged (once: the refusals after it are not)."""
    throttle = request.app[STATE].throttle
    address = client_address(request)
    if throttle.failed(address, scope, time.monotonic()):
        log.warning(
            "locked %s out of %s for %gs: %d wrong within %gs",
            address,
            scope_credentials(scope),
            throttle.lockout,
            throttle.max_failures,
            throttle.window,
        )


def check_locked(request: web.Request, scope: str) -> None:
    """Raise TooManyAttempts when the request's address is locked out of `scope`."""
    throttle = request.app[STATE].throttle
    refuse_if_locked(throttle, client_address(request), scope, time.monotonic())


def guarded(
    request: web.Request, scope: str, check: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`check(*args, **kwargs)` (a check of a credential of `scope`) under the throttle."""
    check_locked(request, scope)
    try:
        return check(*args, **kwargs)
    except Unauthorized:
        count_failure(request, scope)
        raise


def refuse_locked_route(request: web.Request) -> None:
    """Refuse a locked-out address before its request is read, where the route is the scope
    (the error middleware calls this first: one middleware less on every request)."""
    scope = ROUTE_SCOPES.get(request.path)
    if scope is not None:
        check_locked(request, scope)
