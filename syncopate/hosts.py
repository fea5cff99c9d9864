"""Which hosts are this machine's own (loopback): the rule for when plain HTTP is acceptable.

Shared by the manager (it serves HTTPS on anything else) and the controller side (it sends no
token in clear to anything else); standard library only.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (bracketed or not) and `localhost`: traffic that never leaves the
    machine. A host name other than localhost may resolve anywhere, so it is not."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
