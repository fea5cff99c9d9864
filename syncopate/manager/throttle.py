"""The credential throttle: wrong credentials of one kind from one address lock that kind out.

Counted per (address, scope), the scope being what the credential would open (DESIGN §15):
`join` (the join password), `controller` (a controller token, on whichever route: guesses cannot
spread across routes) and `node:<name>` (that node's token, on the node routes or as a device).
`max_failures` wrong credentials of one scope from one address within `window` seconds lock
that address out of that scope for `lockout` seconds. A right credential does NOT clear the
count: were it to, a holder of any valid credential (a viewer's token, a node's) could guess
another at full speed between its own right ones; failures only expire by the window. A lockout
is of one scope only, so a guesser of controller tokens never stops the node polls from its
address (a Pi that also runs a node, nodes behind one NAT). Pure: the caller passes the time in.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

# Defaults (ManagerSettings can change them): 5 wrong credentials within a minute lock the
# address for a minute, so a guesser gets at most 5 tries a minute (7,200 a day) per scope
# against secrets of 100 bits or more, while a person who mistypes a token a few times is never
# locked and an agent whose node was forgotten fails once or twice before it stops (it joins
# again, or waits: node/agent.py).
MAX_FAILURES = 5
WINDOW = 60.0
LOCKOUT = 60.0
# How many (address, scope) pairs the throttle remembers before it sweeps out the ones with
# nothing recent.
SWEEP_AT = 10_000

# The scopes: what a credential opens.
JOIN = "join"
CONTROLLER = "controller"
NODE_PREFIX = "node:"


def node_scope(name: str) -> str:
    """The scope of node `name`'s token (its routes, and /hw_supervisor as a device)."""
    return NODE_PREFIX + name


def scope_credentials(scope: str) -> str:
    """What is guessed in `scope`, for messages: "controller tokens", "tokens of node pi-1"."""
    if scope == JOIN:
        return "join passwords"
    if scope == CONTROLLER:
        return "controller tokens"
    if scope.startswith(NODE_PREFIX):
        return f"tokens of node {scope.removeprefix(NODE_PREFIX)!r}"
    return f"{scope} credentials"


@lru_cache(maxsize=8192)
def address_key(address: str) -> str:
    """The key an address is counted under: an IPv4 address as it is, an IPv6 one by its /64.

    One host is commonly given a whole /64, so counting each of its addresses apart would let
    it guess without end.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # "unknown", a Unix socket: counted as it is
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


Key = tuple[str, str]  # (address key, scope)


@dataclass
class CredentialThrottle:
    """Counts wrong credentials per (address, scope); locks that pair out after too many."""

    max_failures: int = MAX_FAILURES
    window: float = WINDOW
    lockout: float = LOCKOUT
    sweep_at: int = SWEEP_AT
    _failures: dict[Key, deque[float]] = field(default_factory=dict)
    _locked_until: dict[Key, float] = field(default_factory=dict)
    _next_sweep: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._next_sweep = self.sweep_at

    def retry_after(self, address: str, scope: str, now: float) -> float:
        """Seconds until `address` may try credentials of `scope` again; 0 when it may now."""
        if not self._locked_until:
            return 0.0  # every request asks: the usual answer costs no parsing of the address
        key = (address_key(address), scope)
        until = self._locked_until.get(key)
        if until is None:
            return 0.0
        if now >= until:
            del self._locked_until[key]
            return 0.0
        return until - now

    def failed(self, address: str, scope: str, now: float) -> bool:
        """Record a wrong credential of `scope` from `address`; True when it began a lockout
        (the caller logs it once, not on every refused request after)."""
        key = (address_key(address), scope)
        history = self._failures.setdefault(key, deque())
        history.append(now)
        while history and now - history[0] > self.window:
            history.popleft()
        locked = len(history) >= self.max_failures
        if locked:
            self._locked_until[key] = now + self.lockout
            del self._failures[key]
        if self.remembered() > self._next_sweep:
            self.forget_old(now)
        return locked

    def failures(self, address: str, scope: str) -> int:
        """How many failures of `scope` from `address` are counted now (tests)."""
        return len(self._failures.get((address_key(address), scope), ()))

    def forget_old(self, now: float) -> None:
        """Forget the pairs with no failure within the window and no lockout running."""
        for key in [k for k, h in self._failures.items() if not h or now - h[-1] > self.window]:
            del self._failures[key]
        for key in [k for k, until in self._locked_until.items() if now >= until]:
            del self._locked_until[key]
        # Many addresses guessing at once: sweep again only when they have doubled, so a
        # sweep that frees little does not run on every failure.
        self._next_sweep = max(self.sweep_at, 2 * self.remembered())

    def remembered(self) -> int:
        """How many (address, scope) pairs the throttle holds anything for (tests, /metrics)."""
        return len(self._failures) + len(self._locked_until)
