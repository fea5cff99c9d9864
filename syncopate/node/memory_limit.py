"""The memory limit (`--max-ram MB`, PM2's max_memory_restart): polling, and cgroup v2 where
the node may write it (DESIGN section 12).

    cgroups, why_not = memory_limit.find_cgroups(data_dir)   # once per agent
    group = cgroups.project("blink") if cgroups else None
    group.limit(50); group.add([pid])                          # memory.max = 50 MB
    ...                                                        # each poll:
    if over_limit(process.ram_mb(), 50): restart               # what polling enforces
    if group.oom_kills() > seen: the kernel killed it          # what the cgroup enforces
    group.remove()                                             # once it stopped

Polling is always in force: the process tree's resident memory is measured every few seconds,
and a tree over its limit is restarted (SIGTERM, grace, as any restart) with the reason. Where
cgroup v2 is mounted with the memory controller and this agent may create a cgroup at its root
(root, not inside a container's namespace whose root holds processes), each project also runs in
`<cgroup2>/syncopate-<id>/<project>` with `memory.max` exactly the limit (and as much swap at
most), the kernel's hard backstop for a tree that grows faster than the polling sees: it
reclaims the page cache first and kills the whole group (`memory.oom.group`) only when that is
not enough. `<id>` is derived
from the agent's data dir, so agents sharing a machine (tests, a demo) never share a cgroup.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("syncopate.node")

MB = 1024 * 1024
PROBE_EVERY = 2.0  # seconds between measurements, at most (the agent's report interval if less)
MOUNTINFO = Path("/proc/self/mountinfo")


def over_limit(ram_mb: float, limit_mb: float) -> bool:
    """True when a tree using `ram_mb` breaks a limit of `limit_mb` (0: none)."""
    return limit_mb > 0 and ram_mb > limit_mb


def cgroup2_mount(mountinfo: str) -> Path | None:
    """The cgroup v2 mount point named in `mountinfo` (/proc/self/mountinfo's text), preferring
    /sys/fs/cgroup; None when there is none."""
    found: list[Path] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        kind = line.split(" - ", 1)[1].split()[0]
        if kind == "cgroup2":
            found.append(Path(fields[4]))
    for path in found:
        if path == Path("/sys/fs/cgroup"):
            return path
    return found[0] if found else None


def oom_kills(events: str) -> int:
    """The `oom_kill` count of a memory.events text (0 when it is not there)."""
    for line in events.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


@dataclass(frozen=True)
class Cgroups:
    """The cgroup under which this agent makes one memory cgroup per project."""

    base: Path

    def project(self, name: str) -> ProjectCgroup:
        return ProjectCgroup(self.base / name)


@dataclass(frozen=True)
class ProjectCgroup:
    """One project's cgroup: made by `limit`, removed by `remove`. Each method raises OSError."""

    path: Path

    def limit(self, limit_mb: float) -> None:
        """Make the cgroup if need be and set its memory.max to `limit_mb` (0: none)."""
        self.path.mkdir(exist_ok=True)
        value = str(int(limit_mb * MB)) if limit_mb > 0 else "max"
        (self.path / "memory.max").write_text(f"{value}\n")
        # Kill the whole tree, not its biggest process: a half-killed project is worse. And no
        # swap beyond the limit: a tree over it would crawl on swap (on an SD card) instead.
        for name, setting in (("memory.oom.group", "1"), ("memory.swap.max", value)):
            with contextlib.suppress(OSError):  # older kernels, or no swap accounting
                (self.path / name).write_text(f"{setting}\n")

    def add(self, pids: list[int]) -> None:
        """Move `pids` into the cgroup (their later children are born in it)."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def oom_kills(self) -> int:
        """How many times the kernel killed in this cgroup for memory (0 when it is gone)."""
        try:
            return oom_kills((self.path / "memory.events").read_text())
        except OSError:
            return 0

    def remove(self) -> None:
        """Remove the cgroup (its processes have ended); nothing when it is gone already."""
        with contextlib.suppress(FileNotFoundError):
            self.path.rmdir()


_found: dict[Path, tuple[Cgroups | None, str]] = {}


def find_cgroups(data_dir: Path, mountinfo: Path = MOUNTINFO) -> tuple[Cgroups | None, str]:
    """Where this agent may make memory cgroups, or (None, why not). Found once per data dir
    (the agent's life): the answer does not change while it runs."""
    key = data_dir.resolve()
    if key not in _found:
        _found[key] = _find(key, mountinfo)
        cgroups, why_not = _found[key]
        if cgroups is not None:
            log.info("memory limits are enforced with cgroup v2 under %s", cgroups.base)
        else:
            log.info("memory limits are enforced by polling only: %s", why_not)
    return _found[key]


def _find(data_dir: Path, mountinfo: Path) -> tuple[Cgroups | None, str]:
    try:
        root = cgroup2_mount(mountinfo.read_text())
    except OSError as exc:
        return None, f"cannot read {mountinfo}: {exc.strerror}"
    if root is None:
        return None, "cgroup v2 is not mounted"
    try:
        controllers = (root / "cgroup.controllers").read_text().split()
    except OSError as exc:
        return None, f"cannot read {root}/cgroup.controllers: {exc.strerror}"
    if "memory" not in controllers:
        return None, f"the memory controller is not available in cgroup v2 at {root}"
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:12]
    base = root / f"syncopate-{digest}"
    try:
        if "memory" not in (root / "cgroup.subtree_control").read_text().split():
            (root / "cgroup.subtree_control").write_text("+memory\n")
        base.mkdir(exist_ok=True)
        (base / "cgroup.subtree_control").write_text("+memory\n")
    except OSError as exc:
        with contextlib.suppress(OSError):
            base.rmdir()
        return None, f"cgroup v2 at {root} is not writable here: {exc.strerror or exc}"
    _remove_leftovers(base)
    return Cgroups(base), ""


def _remove_leftovers(base: Path) -> None:
    """Remove the empty project cgroups an earlier agent left (it crashed before it could)."""
    for child in base.iterdir():
        if child.is_dir():
            with contextlib.suppress(OSError):  # still holds a process: leave it
                child.rmdir()
