"""When the manager refuses this node's token: join again, or wait without guessing.

The manager refuses a token when it no longer knows the node (`syncopate node forget`, or a
manager whose data is new). Its credential throttle (DESIGN §15) locks an address out of a
scope after 5 wrong credentials of it within a minute: of this node's token (`node:<name>`), or of
the join password, which every node at the address shares (a NAT, the demo's nodes on one
machine). Were this agent to keep polling with a refused token it would only lock itself out,
and were it to keep joining with a refused password it would lock its neighbours' joins out. So
once refused, the agent sends nothing more with that token (no reports, no leave): it joins again
with its password at once; when it cannot (no password, or the password is refused) it stops its
projects (the manager has moved them: they would run twice) and tries again after 30 s, then 1,
2, 4... minutes, at most every 10 minutes: well below the limit. A 429 is waited out as its
Retry-After says. Without a password, each try is one poll with the old token, which works again
if the manager's data comes back from a backup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

from syncopate.errors import (
    ConnectionFailed,
    ProtocolError,
    RequestError,
    TooManyAttempts,
    Unauthorized,
)
from syncopate.node.backoff import REQUEST_RETRY, BackoffPolicy, delays, jitter

log = logging.getLogger("syncopate.node")

# Between two tries while the manager refuses this node (a wrong or missing password).
REJOIN_RETRY = BackoffPolicy(first=30.0, factor=2.0, cap=600.0)


class Rejoin:
    """Whether this node's token is refused, and how it gets a working one again.

    `join` joins with the password (None: the agent has none); `probe` polls once with the
    current token; `give_up` stops every project here.
    """

    def __init__(
        self,
        join: Callable[[], Awaitable[object]] | None,
        probe: Callable[[], Awaitable[object]],
        give_up: Callable[[], None],
        policy: BackoffPolicy = REJOIN_RETRY,
    ) -> None:
        self.join, self.probe, self.give_up, self.policy = join, probe, give_up, policy
        self.refused = False  # the manager refused the token; nothing is sent with it now
        self.gave_up = False

    async def recover(self, stop: asyncio.Event, why: str) -> None:
        """Return once the node has a token the manager takes, or when `stop` is set."""
        self.refused = True
        tries = delays(self.policy)
        network = delays(REQUEST_RETRY)
        attempt: Callable[[], Awaitable[object]]
        if self.join is None:
            self._give_up(f"{why}, and it has no join password to join again with")
            attempt, delay = self.probe, next(tries) * random.uniform(1.0, 1.25)
        else:
            log.warning("%s; joining again", why)
            attempt, delay = self.join, 0.0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            if stop.is_set():
                return
            try:
                await attempt()
            except TooManyAttempts as exc:
                # Locked out (by this node or by another on the address): wait as told.
                log.warning("%s", exc)
                delay = exc.retry_after * random.uniform(1.0, 1.25)
            except Unauthorized as exc:
                self._give_up(f"{why}, and it could not join again: {exc}")
                # Never sooner than the policy's first wait, so tries stay far apart.
                delay = next(tries) * random.uniform(1.0, 1.25)
            except (ConnectionFailed, ProtocolError, RequestError) as exc:
                delay = jitter(next(network))
                log.warning("joining again failed: %s; retrying in %.1fs", exc, delay)
            else:
                self.refused = self.gave_up = False
                return

    def _give_up(self, reason: str) -> None:
        """Stop the projects (once) and say why, and that the agent keeps trying."""
        log.error("%s; its projects are stopped; trying again later", reason)
        if not self.gave_up:
            self.gave_up = True
            self.give_up()
