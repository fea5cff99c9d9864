"""The agent's side of reports riding on the poll (node/poll_reports.py): what goes on a poll,
what its answer acknowledges or refuses, when the interval round still sends a /node-update,
and how an older manager (one that answers no `held`) is noticed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncopate import protocol
from syncopate.node.logs import LogSink
from syncopate.node.poll_reports import MAX_POLL_REPORTS, POLL_REPORT_BYTES, PollReports, Refusal
from syncopate.node.project import Local

INTERVAL = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sinks(tmp_path: Path) -> Iterator[dict[str, LogSink]]:
    made: dict[str, LogSink] = {}
    yield made
    for sink in made.values():
        sink.close()


def sink_in(sinks: dict[str, LogSink], tmp: Path, name: str) -> LogSink:
    sinks[name] = LogSink(tmp / f"{name}.log")
    return sinks[name]


def local(name: str, sink: LogSink | None = None) -> Local:
    copy = Local(name=name, url=f"https://example.com/{name}.git", epoch=1)
    copy.sink = sink
    return copy


def report(copy: Local, **extra: Any) -> dict[str, Any]:
    return {"project-name": copy.name, "project-url": copy.url, "status": "running", **extra}


def with_lines(copy: Local, seq: int, count: int) -> dict[str, Any]:
    assert copy.sink is not None
    lines = [f"line {n}" for n in range(seq, seq + count)]
    return report(copy, **{"log-stream": copy.sink.stream, "log-seq": seq, "log-lines": lines})


TAKEN: dict[str, Any] = {"projects": {}, "held": 4.9, "refused": {}}
OLDER: dict[str, Any] = {"projects": {}}  # an older manager's answer: no `held`, no `refused`


def test_an_unknown_manager_is_sent_reports_and_its_answer_says_whether_it_took_them() -> None:
    clock = Clock()
    polls = PollReports(clock, INTERVAL)
    a = local("a")
    assert polls.taken is None and polls.wait(20.0) == 20.0
    assert polls.load([(a, report(a))]) == [report(a)]
    assert polls.due_by_update("a")  # not known to be taken: the round still sends it
    assert polls.answered(OLDER, clock()) == []
    assert polls.taken is False
    # An older manager: nothing more goes on its polls, every report goes by /node-update,
    # and the poll is the agent's usual long poll.
    assert polls.load([(a, report(a))]) == []
    assert polls.due_by_update("a")
    assert polls.wait(20.0) == 20.0
    # The same manager upgraded in place: its next answer says so.
    polls.answered(TAKEN, clock())
    assert polls.taken is True
    assert polls.wait(20.0) == INTERVAL  # an idle node polls about once per interval
    assert polls.wait(2.0) == 2.0


def test_a_project_carried_lately_is_not_sent_by_update_too() -> None:
    clock = Clock()
    polls = PollReports(clock, INTERVAL)
    a = local("a")
    polls.answered(TAKEN, clock())  # the manager takes them
    polls.load([(a, report(a))])
    assert not polls.due_by_update("a")  # under way on the poll
    assert polls.due_by_update("b")  # not on it (say, PENDING when it left)
    clock.now += INTERVAL  # the hold
    polls.answered(TAKEN, sent=clock.now - INTERVAL)
    clock.now += INTERVAL
    assert not polls.due_by_update("a")
    clock.now += INTERVAL + 0.1  # no poll carried it for over two intervals (polls failing)
    assert polls.due_by_update("a")
    # A short interval still allows a second for the round trip (a loaded node).
    short = PollReports(clock, 0.2)
    short.answered(TAKEN, clock())
    short.load([(a, report(a))])
    short.answered(TAKEN, sent=clock.now)
    clock.now += 1.0
    assert not short.due_by_update("a")
    clock.now += 0.3
    assert short.due_by_update("a")


def test_a_failed_poll_acknowledges_nothing(sinks: dict[str, LogSink], tmp_path: Path) -> None:
    clock = Clock()
    polls = PollReports(clock, INTERVAL)
    polls.answered(TAKEN, clock())
    a = local("a", sink_in(sinks, tmp_path, "a"))
    polls.load([(a, with_lines(a, 0, 3))])
    polls.failed()
    assert a.log_next == 0
    assert polls.due_by_update("a")


def test_output_is_acknowledged_when_the_answer_comes_in_either_order(
    sinks: dict[str, LogSink], tmp_path: Path
) -> None:
    # A report on a held poll, and a /node-update sent meanwhile from the same cursor: the
    # manager keeps each line once; whichever answer comes last, the higher mark stands.
    clock = Clock()
    polls = PollReports(clock, INTERVAL)
    polls.answered(TAKEN, clock())
    a = local("a", sink_in(sinks, tmp_path, "a"))
    polls.load([(a, with_lines(a, 0, 3))])
    assert a.log_next == 0  # not before the answer
    a.acknowledged(with_lines(a, 0, 5))  # the /node-update's answer came first
    polls.answered(TAKEN, clock())
    assert a.log_next == 5


def test_a_refused_report_is_not_acknowledged_and_says_what_update_would(
    sinks: dict[str, LogSink], tmp_path: Path
) -> None:
    clock = Clock()
    polls = PollReports(clock, INTERVAL)
    polls.answered(TAKEN, clock())
    a = local("a", sink_in(sinks, tmp_path, "a"))
    b = local("b", sink_in(sinks, tmp_path, "b"))
    polls.load([(a, with_lines(a, 0, 2)), (b, with_lines(b, 0, 2))])
    refused = {"a": {"code": 102, "reason": "not yours", "status": 403}}
    got = polls.answered({**TAKEN, "refused": refused}, clock())
    assert got == [(a, Refusal(403, 102, "not yours"))]
    assert (a.log_next, b.log_next) == (0, 2)
    assert not polls.due_by_update("a")  # answered: the round does not send it again


def test_reports_that_do_not_fit_on_the_poll_go_by_update() -> None:
    clock = Clock()
    polls = PollReports(clock, INTERVAL)
    polls.answered(TAKEN, clock())
    big = "x" * (POLL_REPORT_BYTES // 3)
    copies = [local(f"p{n}") for n in range(4)]
    sent = polls.load([(c, report(c, reason=big)) for c in copies])
    assert [r["project-name"] for r in sent] == ["p0", "p1"]  # a third of the budget each
    assert [polls.due_by_update(c.name) for c in copies] == [False, False, True, True]
    many = [local(f"q{n}") for n in range(MAX_POLL_REPORTS + 5)]
    assert len(polls.load([(c, report(c)) for c in many])) == MAX_POLL_REPORTS
    assert polls.due_by_update(many[-1].name)


def test_the_agents_limits_are_the_managers() -> None:
    assert MAX_POLL_REPORTS == protocol.MAX_POLL_REPORTS
    assert POLL_REPORT_BYTES == protocol.MAX_BODY_BYTES // 2
