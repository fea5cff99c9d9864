"""The credential throttle: an address that keeps sending wrong credentials is locked out.

One throttle per manager covers every route that takes a credential (the join password, a
node's token, a controller token, a device's `pword`), so a guesser cannot spread its tries
across routes. The rule (DESIGN §15): `max_failures` wrong credentials from one address within
`window` seconds lock that address out for `lockout` seconds; a right credential clears its
count. Pure: the caller passes the time in, so the rule is tested without waiting.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field

# Defaults (ManagerSettings can change them): 5 wrong credentials within a minute lock the
# address for a minute, so a guesser gets at most 5 tries a minute (7,200 a day) against
# secrets of 100 bits or more, while a person who mistypes a token a few times is never
# locked and an agent whose node was forgotten fails once or twice before it stops (it joins
# again, or waits: node/agent.py).
MAX_FAILURES = 5
WINDOW = 60.0
LOCKOUT = 60.0
# How many addresses the throttle remembers before it sweeps out the ones with nothing recent.
SWEEP_AT = 10_000


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


@dataclass
class CredentialThrottle:
    """Counts wrong credentials per address and locks an address out after too many."""

    max_failures: int = MAX_FAILURES
    window: float = WINDOW
    lockout: float = LOCKOUT
    sweep_at: int = SWEEP_AT
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)
    _next_sweep: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._next_sweep = self.sweep_at

    def retry_after(self, address: str, now: float) -> float:
        """Seconds until this address may try again; 0 when it may try now."""
        key = address_key(address)
        until = self._locked_until.get(key)
        if until is None:
            return 0.0
        if now >= until:
            del self._locked_until[key]
            return 0.0
        return until - now

    def failed(self, address: str, now: float) -> None:
        """Record a wrong credential from `address`; the last allowed one locks it out."""
        key = address_key(address)
        history = self._failures.setdefault(key, deque())
        history.append(now)
        while history and now - history[0] > self.window:
            history.popleft()
        if len(history) >= self.max_failures:
            self._locked_until[key] = now + self.lockout
            del self._failures[key]
        if self.remembered() > self._next_sweep:
            self.forget_old(now)

    def succeeded(self, address: str) -> None:
        """A right credential from `address`: its count starts again (a lockout stays)."""
        self._failures.pop(address_key(address), None)

    def forget_old(self, now: float) -> None:
        """Forget the addresses with no failure within the window and no lockout running."""
        for key in [k for k, h in self._failures.items() if not h or now - h[-1] > self.window]:
            del self._failures[key]
        for key in [k for k, until in self._locked_until.items() if now >= until]:
            del self._locked_until[key]
        # Many addresses guessing at once: sweep again only when they have doubled, so a
        # sweep that frees little does not run on every failure.
        self._next_sweep = max(self.sweep_at, 2 * self.remembered())

    def remembered(self) -> int:
        """How many addresses the throttle holds anything for (tests, /metrics)."""
        return len(self._failures) + len(self._locked_until)
