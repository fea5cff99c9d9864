"""How `syncopate logs` prints lines: times in the local zone, prefixes, once each, merged."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from syncopate.cli.log_lines import PREFIX_WIDTH, LinePrinter, lines_of, merged
from syncopate.render import local_time


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The local zone is UTC+2 for the test, so a local time differs from the wire's."""
    monkeypatch.setenv("TZ", "EET-2")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_time_prints_in_the_local_zone_and_an_unknown_one_as_blanks(local_zone: None) -> None:
    assert local_time("2026-12-03T12:01:02.500Z") == "2026-12-03 14:01:02"
    assert local_time(None) == " " * 19


def test_lines_print_with_time_and_prefix_once_each(
    local_zone: None, capsys: pytest.CaptureFixture[str]
) -> None:
    printer = LinePrinter(times=True, prefix=True)
    printer.width = 7
    stamps = ["2026-12-03T12:00:00.000Z", "2026-12-03T12:00:01.000Z"]
    printer.show("web", 4, ["a", "b"], stamps)
    printer.show("web", 5, ["b", "c"], [stamps[1], None])  # "b" came both ways
    assert capsys.readouterr().out.splitlines() == [
        "2026-12-03 14:00:00 web     | a",
        "2026-12-03 14:00:01 web     | b",
        " " * 19 + " web     | c",
    ]


def test_no_time_prints_the_lines_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    LinePrinter(times=False).show("web", 0, ["raw line"], ["2026-12-03T12:00:00.000Z"])
    assert capsys.readouterr().out == "raw line\n"


def test_json_lines_carry_name_seq_time_and_line(capsys: pytest.CaptureFixture[str]) -> None:
    LinePrinter(as_json=True).show("web", 3, ["x"], ["2026-12-03T12:00:00.000Z"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"name": "web", "seq": 3, "time": "2026-12-03T12:00:00.000Z", "line": "x"}


def test_merged_is_in_time_order_and_keeps_each_projects_order() -> None:
    t = [f"2026-12-03T12:00:0{i}.000Z" for i in range(5)]
    web = lines_of("web", 0, ["w0", "w1", "w2"], [t[0], t[3], t[3]])
    db = lines_of("db", 7, ["d0", "d1"], [t[1], t[4]])
    assert [line.line for line in merged([web, db])] == ["w0", "d0", "w1", "w2", "d1"]


def test_a_long_project_name_is_cut_so_the_prefix_stays_narrow(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printer = LinePrinter(times=False, prefix=True)
    long_name = "a-very-long-project-name-that-would-eat-the-whole-terminal-line"
    printer.show(long_name, 0, ["x"], [None])
    printer.show("web", 0, ["y"], [None])
    assert capsys.readouterr().out.splitlines() == [
        "a-very-long-pro… | x",
        "web              | y",
    ]
    assert len("a-very-long-pro…") == PREFIX_WIDTH


def test_lines_no_longer_kept_are_counted_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    printer = LinePrinter(times=False)
    printer.show("web", 0, ["a"], [None])
    printer.show("web", 2, ["c"], [None])
    printer.show("web", 5, ["f"], [None])
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["a", "c", "f"]
    assert captured.err.splitlines() == [
        "… 1 line no longer kept by the manager",
        "… 2 lines no longer kept by the manager",
    ]
