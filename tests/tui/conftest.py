"""The TUI's screenshot baselines live in the top-level `snapshots/` folder.

pytest-textual-snapshot's `snap_compare` fixture compares an SVG screenshot of the app with a
baseline kept by syrupy. It picks its syrupy extension itself (`SVGImageExtension`, which keeps
`tests/tui/__snapshots__/<test module>/<test>.svg`), so moving the baselines takes two parts:

- `SnapshotsFolderSVG`, the plugin's extension with its folder changed: the baseline of
  `test_x` in `tests/tui/test_snapshots.py` is `snapshots/test_snapshots/test_x.svg`. (syrupy
  wants the folder named after the test module: it relates a file to its module by that.)
- a `snapshot` fixture, the one `snap_compare` asks for, whose `use_extension` hands out
  `SnapshotsFolderSVG` when the plugin asks for `SVGImageExtension`.

Everything else, the comparison, `--snapshot-update` and the HTML report of the differences,
is the plugin's own: `python -m pytest tests/tui/test_snapshots.py --snapshot-update` writes the
baselines, and a plain run fails on any difference and writes `snapshot_report.html` (the
plugin's side-by-side pictures) to the current directory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from syrupy.data import SnapshotCollections
from syrupy.location import PyTestLocation

SNAPSHOTS = Path(__file__).resolve().parents[2] / "snapshots"


class SnapshotsFolderSVG(SVGImageExtension):
    """The plugin's SVG extension, keeping baselines in `snapshots/<test module>/`."""

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(SNAPSHOTS / test_location.basename)

    def discover_snapshots(self, *, test_location: PyTestLocation) -> SnapshotCollections:
        """The module's baselines that this run could have used, and those no test owns.

        syrupy counts a baseline found here that no assertion used as unused: the run fails,
        and `--snapshot-update` deletes it. For a run of one test (`file.py::test_x`) it spares
        the other tests' baselines only when they sit below the test file's folder, which
        these do not; so the baselines of the module's tests that this run did not collect
        are left out here. A baseline named after no test of the module (the test was renamed
        or removed) is still found, and reported, by a run not narrowed to `::` tests.
        """
        item = test_location.item
        collected = [
            PyTestLocation(other) for other in item.session.items if other.path == item.path
        ]
        module = getattr(item, "module", None)
        chosen = any("::" in arg for arg in item.config.option.file_or_dir)
        kept = SnapshotCollections()
        for collection in super().discover_snapshots(test_location=test_location):
            for snapshot in collection:
                owner = snapshot.name.split(".")[0].split("[")[0]
                orphan = module is None or not hasattr(module, owner)
                if (orphan and not chosen) or any(
                    loc.matches_snapshot_name(snapshot.name) for loc in collected
                ):
                    kept.update(collection)
        return kept


class SnapshotsFolderAssertion(SnapshotAssertion):
    """syrupy's assertion, with the plugin's SVG extension swapped for `SnapshotsFolderSVG`.

    syrupy builds each derived assertion with `self.__class__`, so the swap carries through
    `use_extension` and `with_defaults`.
    """

    def use_extension(self, extension_class: Any = None) -> SnapshotAssertion:
        if extension_class is SVGImageExtension:
            extension_class = SnapshotsFolderSVG
        return super().use_extension(extension_class)


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """syrupy's `snapshot`, storing the TUI's SVG screenshots in the top-level `snapshots/`."""
    return SnapshotsFolderAssertion(
        session=snapshot.session,
        extension_class=snapshot.extension_class,
        test_location=snapshot.test_location,
        update_snapshots=snapshot.update_snapshots,
    )


@pytest.fixture(autouse=True)
def utc_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The TUI shows times in the local zone: the screens here are drawn in UTC, so a baseline
    does not depend on the zone of the machine that runs the tests."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
