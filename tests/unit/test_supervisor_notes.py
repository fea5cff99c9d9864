"""What the supervisor writes in a project's own output: words for people, not agent internals."""

from __future__ import annotations

import logging
from pathlib import Path

import psutil
import pytest

from syncopate.node import supervisor
from tests.unit.test_supervisor import Projects, projects, wait_until

__all__ = ["projects"]  # the fixture, used by name


async def test_the_restart_note_counts_failures_in_words(projects: Projects) -> None:
    process = projects("exit 3")
    await process.start()
    await wait_until(lambda: process.restarts >= 2)
    notes = [line for line in process.log.tail() if line.startswith("[syncopate] restarting")]
    assert notes[0].endswith("(1 failure in a row)"), notes
    assert notes[1].endswith("(2 failures in a row)"), notes


async def test_a_process_that_could_not_be_recorded_is_the_agents_business(
    projects: Projects, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def gone(record_dir: Path, name: str, pid: int, command: str) -> None:
        raise psutil.NoSuchProcess(pid)

    monkeypatch.setattr(supervisor, "write_record", gone)
    process = projects("echo hello; exec sleep 1000")
    with caplog.at_level(logging.DEBUG, logger="syncopate.node"):
        await process.start()
        await wait_until(lambda: "hello" in process.log.tail())
    assert not [line for line in process.log.tail() if "could not record" in line]
    assert any("could not record" in r.getMessage() for r in caplog.records), caplog.records
