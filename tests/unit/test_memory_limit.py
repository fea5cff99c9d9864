"""The memory limit's pure parts: finding cgroup v2, reading memory.events, the limit itself;
and a project cgroup's files, written into a directory that stands in for cgroupfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncopate.node import memory_limit
from syncopate.node.memory_limit import MB, ProjectCgroup

HYBRID = """\
25 1 0:24 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
41 25 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 25 0:39 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""
UNIFIED = """\
30 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw
31 1 0:27 / /mnt/other rw,relatime - cgroup2 cgroup2 rw
"""


@pytest.mark.parametrize(
    ("mountinfo", "expected"),
    [
        (HYBRID, Path("/sys/fs/cgroup/unified")),
        (UNIFIED, Path("/sys/fs/cgroup")),
        ("42 25 0:39 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", None),
        ("", None),
    ],
)
def test_cgroup2_mount(mountinfo: str, expected: Path | None) -> None:
    assert memory_limit.cgroup2_mount(mountinfo) == expected


@pytest.mark.parametrize(
    ("events", "kills"),
    [
        ("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 1\n", 2),
        ("low 0\nmax 0\noom 0\n", 0),
        ("", 0),
    ],
)
def test_oom_kills(events: str, kills: int) -> None:
    assert memory_limit.oom_kills(events) == kills


@pytest.mark.parametrize(
    ("ram", "limit", "over"),
    [(10.0, 0.0, False), (10.0, 10.0, False), (10.5, 10.0, True), (500.0, 64.0, True)],
)
def test_over_limit(ram: float, limit: float, over: bool) -> None:
    assert memory_limit.over_limit(ram, limit) is over


def test_a_project_cgroups_files(tmp_path: Path) -> None:
    group = ProjectCgroup(tmp_path / "blink")
    group.limit(64)
    assert (group.path / "memory.max").read_text() == f"{64 * MB}\n"
    assert (group.path / "memory.oom.group").read_text() == "1\n"
    assert (group.path / "memory.swap.max").read_text() == f"{64 * MB}\n"
    group.limit(0)
    assert (group.path / "memory.max").read_text() == "max\n"
    assert (group.path / "memory.swap.max").read_text() == "max\n"
    group.add([1234])
    assert (group.path / "cgroup.procs").read_text() == "1234\n"
    assert group.oom_kills() == 0
    (group.path / "memory.events").write_text("oom 1\noom_kill 1\n")
    assert group.oom_kills() == 1


def fake_root(tmp_path: Path, controllers: str) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers)
    (root / "cgroup.subtree_control").write_text("")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"30 1 0:26 / {root} rw,relatime - cgroup2 cgroup2 rw\n")
    return mountinfo


def test_cgroups_found_where_memory_is_available(tmp_path: Path) -> None:
    mountinfo = fake_root(tmp_path, "cpu io memory pids\n")
    cgroups, why_not = memory_limit.find_cgroups(tmp_path / "node-a", mountinfo)
    assert cgroups is not None and why_not == ""
    assert cgroups.base.parent == tmp_path / "cgroup"
    assert cgroups.base.name.startswith("syncopate-")
    assert (cgroups.base / "cgroup.subtree_control").read_text() == "+memory\n"
    assert (tmp_path / "cgroup" / "cgroup.subtree_control").read_text() == "+memory\n"
    other, _ = memory_limit.find_cgroups(tmp_path / "node-b", mountinfo)
    assert other is not None and other.base != cgroups.base  # agents never share one


def test_no_cgroups_says_why(tmp_path: Path) -> None:
    mountinfo = fake_root(tmp_path, "cpu pids\n")
    cgroups, why_not = memory_limit.find_cgroups(tmp_path / "node-c", mountinfo)
    assert cgroups is None and "memory controller is not available" in why_not
    missing = tmp_path / "no-mountinfo"
    assert memory_limit.find_cgroups(tmp_path / "node-d", missing)[1].startswith("cannot read")
    (tmp_path / "empty").write_text("")
    empty = tmp_path / "empty"
    assert memory_limit.find_cgroups(tmp_path / "node-e", empty) == (
        None,
        "cgroup v2 is not mounted",
    )
