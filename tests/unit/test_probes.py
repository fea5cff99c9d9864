"""Disk use of a project directory and the node's capacity, measured on real files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from syncopate.node.probes import MB, capacity, dir_size_mb


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_counts_regular_files_at_every_depth(tmp_path: Path) -> None:
    write(tmp_path / "a.bin", MB)
    write(tmp_path / "sub" / "b.bin", 512 * 1024)
    write(tmp_path / "sub" / "deeper" / "c.bin", 1000)
    write(tmp_path / ".git" / "objects" / "pack", 24)
    assert dir_size_mb(tmp_path) == (MB + 512 * 1024 + 1000 + 24) / MB


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "big.bin", 3 * MB)
    project = tmp_path / "project"
    write(project / "small.bin", 100)
    (project / "link-to-file").symlink_to(outside / "big.bin")
    (project / "link-to-dir").symlink_to(outside, target_is_directory=True)
    (project / "dangling").symlink_to(tmp_path / "nowhere")
    (project / "loop").symlink_to(project, target_is_directory=True)

    assert dir_size_mb(project) == 100 / MB


def test_missing_path_is_zero(tmp_path: Path) -> None:
    assert dir_size_mb(tmp_path / "missing") == 0.0


def test_empty_directory_is_zero(tmp_path: Path) -> None:
    assert dir_size_mb(tmp_path) == 0.0


def test_a_file_counts_as_itself(tmp_path: Path) -> None:
    write(tmp_path / "one.bin", 2 * MB)
    assert dir_size_mb(tmp_path / "one.bin") == 2.0


def vanishing_scandir(victims: set[str]) -> Callable[[str], object]:
    """os.scandir that deletes each victim just after listing it, as a running project might."""
    real_scandir = os.scandir

    @contextmanager
    def scandir(path: str) -> Iterator[Iterator[os.DirEntry[str]]]:
        with real_scandir(path) as entries:
            listed = list(entries)

        def walk() -> Iterator[os.DirEntry[str]]:
            for entry in listed:
                if entry.name in victims:
                    if entry.is_dir():
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                yield entry

        yield walk()

    return scandir


def test_files_and_directories_that_vanish_mid_walk_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "stays.bin", 4096)
    write(tmp_path / "vanishes.bin", MB)
    write(tmp_path / "gone" / "inside.bin", MB)
    monkeypatch.setattr(os, "scandir", vanishing_scandir({"vanishes.bin", "gone"}))

    assert dir_size_mb(tmp_path) == 4096 / MB
    assert not (tmp_path / "vanishes.bin").exists()
    assert not (tmp_path / "gone").exists()


def test_capacity_reports_free_storage_and_total_ram(tmp_path: Path) -> None:
    free_mb, ram_mb = capacity(tmp_path)
    assert ram_mb == psutil.virtual_memory().total / MB
    assert ram_mb > 0
    disk = shutil.disk_usage(tmp_path)
    assert 0 < free_mb <= disk.total / MB
    # Free space moves as other processes write; a 64 MB window is plenty for a test run.
    assert abs(free_mb - disk.free / MB) < 64


def test_capacity_of_a_data_dir_not_made_yet(tmp_path: Path) -> None:
    free_mb, _ = capacity(tmp_path / "not" / "yet")
    assert abs(free_mb - shutil.disk_usage(tmp_path).free / MB) < 64
    assert not (tmp_path / "not").exists()
