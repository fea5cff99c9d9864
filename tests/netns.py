"""A network namespace joined to the root namespace by one veth pair, for partition tests.

    with NetNamespace.create() as ns:      # needs root and `ip`; raises NetnsUnavailable if not
        ns.root_address                     # e.g. 169.254.77.1 (the root side of the veth)
        ns.inner_address                    # e.g. 169.254.77.2 (inside the namespace)
        subprocess.Popen(ns.wrap([...]))    # a command run inside the namespace
        ns.cut("drop")                      # packets between the two sides silently vanish
        ns.heal()

Addresses are one /30 of the link-local 169.254.0.0/16 on the veth only: traffic goes between
the two ends of that pair and nowhere else. The namespace (and with it both veth ends) is
deleted on exit.

Two ways to cut:
- "drop": a blackhole route to the far address on each side. Packets vanish, nothing is reset:
  established TCP connections stay half open and deliver what they retransmit once healed,
  like a pulled cable or a dead switch (no iptables or netem needed).
- "link-down": the veth's root end is set down. The peer loses carrier; connected routes go.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

CUT_MODES = ("drop", "link-down")


class NetnsUnavailable(Exception):
    """This machine cannot give the test a network namespace (not root, no `ip`, ...)."""


def _ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    command = ["ip", *args] if netns is None else ["ip", "-n", netns, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _addresses_in_use() -> str:
    return _ip("-o", "addr", "show") + _ip("route", "show", "table", "all")


@dataclass
class NetNamespace:
    name: str
    root_veth: str
    inner_veth: str
    root_address: str
    inner_address: str
    cut_mode: str | None = None

    @classmethod
    def create(cls) -> NetNamespace:
        """A fresh namespace and veth pair with unused names and an unused /30."""
        if os.geteuid() != 0:
            raise NetnsUnavailable("not running as root")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the `ip` command (iproute2) is missing")
        tag = f"{os.getpid() % 100000}{random.randrange(1000):03d}"
        name, root_veth, inner_veth = f"syncpart{tag}", f"spr{tag}", f"spi{tag}"
        in_use = _addresses_in_use()
        for _ in range(100):
            net = ipaddress.ip_network(
                f"169.254.{random.randrange(64, 250)}.{4 * random.randrange(64)}/30"
            )
            root_address, inner_address = (str(h) for h in net.hosts())
            if root_address not in in_use and inner_address not in in_use:
                break
        else:
            raise NetnsUnavailable("found no unused /30 in 169.254.64.0/18")
        try:
            _ip("netns", "add", name)
        except RuntimeError as exc:
            raise NetnsUnavailable(str(exc)) from None
        ns = cls(name, root_veth, inner_veth, root_address, inner_address)
        try:
            _ip("link", "add", root_veth, "type", "veth", "peer", "name", inner_veth, "netns", name)
            _ip("addr", "add", f"{root_address}/30", "dev", root_veth)
            _ip("addr", "add", f"{inner_address}/30", "dev", inner_veth, netns=name)
            _ip("link", "set", root_veth, "up")
            _ip("link", "set", inner_veth, "up", netns=name)
            _ip("link", "set", "lo", "up", netns=name)
        except RuntimeError as exc:
            ns.delete()
            raise NetnsUnavailable(str(exc)) from None
        return ns

    def wrap(self, command: Sequence[str]) -> list[str]:
        """`command` run inside the namespace (ip execs it: the pid is the command's own)."""
        return ["ip", "netns", "exec", self.name, *command]

    def cut(self, mode: str = "drop") -> None:
        if mode not in CUT_MODES:
            raise ValueError(f"unknown cut mode {mode!r}; one of {CUT_MODES}")
        if self.cut_mode is not None:
            raise RuntimeError("already cut")
        if mode == "drop":
            _ip("route", "add", "blackhole", f"{self.inner_address}/32")
            _ip("route", "add", "blackhole", f"{self.root_address}/32", netns=self.name)
        else:
            _ip("link", "set", self.root_veth, "down")
        self.cut_mode = mode

    def heal(self) -> None:
        mode, self.cut_mode = self.cut_mode, None
        if mode == "drop":
            _ip("route", "del", "blackhole", f"{self.inner_address}/32", check=False)
            _ip(
                "route", "del", "blackhole", f"{self.root_address}/32", netns=self.name, check=False
            )
        elif mode == "link-down":
            _ip("link", "set", self.root_veth, "up")

    def delete(self) -> None:
        """Heal (so the root namespace keeps no blackhole route), then delete everything."""
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            self.heal()
        # Deleting the namespace deletes the veth end in it, and with it the pair.
        _ip("link", "del", self.root_veth, check=False)
        _ip("netns", "del", self.name, check=False)

    def __enter__(self) -> NetNamespace:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.delete()
