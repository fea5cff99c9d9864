"""Which of the agent's reports ride on its long poll, and what the poll's answer says of them.

Issue 18: an idle node should cost the manager one request per report interval, so its
projects' reports go on its /node-status poll (the manager takes them before the hold) instead
of one /node-update each. The manager answers `held` (and `refused`, by project) when it takes
them; an older manager ignores `reports` and answers neither, and then every report goes by
/node-update as before. Each answer says which manager this is, so a manager upgraded (or
downgraded) in place is followed at its next poll.

A report on a poll is acknowledged (`Local.acknowledged`: its output lines need not be sent
again) only when the poll's answer arrives, after the hold. A /node-update sent meanwhile
carries the same unacknowledged lines again; the manager keeps each line once (its cursor
drops what it has: manager/logbook.py), and acknowledging in either order keeps the higher
mark, so nothing is lost or doubled.

    polls = PollReports(clock, interval=5.0)
    reports = polls.load(candidates)          # before the poll: what goes on it
    refused = polls.answered(answer, sent)    # after: the refused ones, to stop
    polls.due_by_update("blink")              # the interval round: send it separately?
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncopate.node.project import Local

# The manager's limits (protocol.MAX_POLL_REPORTS, MAX_BODY_BYTES), not imported: the agent
# stays free of pydantic (tests/unit/test_poll_reports.py checks they agree).
MAX_POLL_REPORTS = 1000
# Of JSON text on one poll: half the manager's 1 MiB body limit, so a node with many projects
# that printed a lot never has its poll refused as too large (each report's own output is
# already bounded by report.LOG_BYTES_PER_REPORT). What does not fit goes by /node-update.
POLL_REPORT_BYTES = 512 * 1024


@dataclass(frozen=True)
class Refusal:
    """A report the manager refused on the poll: what /node-update would have answered."""

    status: int
    code: int | None
    reason: str


@dataclass(frozen=True)
class _Carried:
    local: Local
    report: dict[str, Any]


class PollReports:
    """The reports on the poll under way, and when each project's last went on an answered one.

    `taken`: whether the manager takes reports on the poll (None: not known until its first
    answer).
    """

    def __init__(self, clock: Callable[[], float], interval: float) -> None:
        self.clock = clock
        self.interval = interval
        self.taken: bool | None = None
        self._in_flight: dict[str, _Carried] = {}
        self._carried_at: dict[str, float] = {}  # when the last answered poll with it left

    def wait(self, poll_wait: float) -> float:
        """The hold to ask of the manager: about one report interval once it takes reports
        (an idle node then polls once per interval), else the agent's usual long poll."""
        return min(poll_wait, self.interval) if self.taken else poll_wait

    def load(self, candidates: list[tuple[Local, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Which of `candidates` (each project's current report) go on the next poll.

        None for a manager known not to take them; else as many as fit in the byte budget and
        the manager's count limit. A project left off reports by /node-update instead.
        """
        self._in_flight = {}
        names = {local.name for local, _ in candidates}
        self._carried_at = {n: t for n, t in self._carried_at.items() if n in names}
        if self.taken is False:
            return []
        chosen: list[dict[str, Any]] = []
        used = 0
        for local, report in candidates:
            if len(chosen) == MAX_POLL_REPORTS:
                break
            size = len(json.dumps(report)) + 2  # as the client encodes it (ASCII), a comma
            if used + size > POLL_REPORT_BYTES:
                continue
            used += size
            chosen.append(report)
            self._in_flight[local.name] = _Carried(local, report)
        return chosen

    def answered(self, answer: dict[str, Any], sent: float) -> list[tuple[Local, Refusal]]:
        """The poll (which left at `sent`) was answered: acknowledge the reports it carried;
        return those refused, each with its project's copy here, to act on as a refused
        /node-update."""
        carried, self._in_flight = self._in_flight, {}
        self.taken = "held" in answer
        if not self.taken:
            return []  # an older manager: it ignored them; the interval round sends them
        refused = answer.get("refused")
        refused = refused if isinstance(refused, dict) else {}
        out: list[tuple[Local, Refusal]] = []
        for name, item in carried.items():
            self._carried_at[name] = sent
            entry = refused.get(name)
            if isinstance(entry, dict):
                out.append((item.local, _refusal(entry)))
            else:
                item.local.acknowledged(item.report)
        return out

    def failed(self) -> None:
        """The poll failed: what it carried is not known to be taken."""
        self._in_flight = {}

    def due_by_update(self, name: str) -> bool:
        """Whether the interval round must report project `name` by /node-update: the
        manager does not take reports on the poll, or none has carried it lately.

        Lately: the last poll that carried it left within two intervals, or one more second
        (its hold of about one interval, its round trip, building the next; a loaded node must
        not double its requests); one under way counts too.
        """
        if not self.taken:
            return True
        if name in self._in_flight:
            return False
        lately = max(2 * self.interval, self.interval + 1.0)
        return self.clock() - self._carried_at.get(name, -math.inf) > lately


def _refusal(entry: dict[str, Any]) -> Refusal:
    status, code = entry.get("status"), entry.get("code")
    return Refusal(
        status if isinstance(status, int) else 400,
        code if isinstance(code, int) else None,
        str(entry.get("reason") or "refused"),
    )
