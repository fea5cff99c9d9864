"""The wire forms of a command: what controllers, /events and nodes see, and the seed's fields.

`command_info` is a command as `command-show`, `command-list` and /events give it (DESIGN
section 7); `command_order` is what an agent node collects in its long poll; `device_status` is
the hardware_synchronizer seed's status fields for a lite device, whose states are numbered
0 (at rest) to 3. Every time stamp of a command is `utc_now_ms`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from syncopate.manager.records import CommandRecord
from syncopate.states import CommandState

# The seed's `state` field: 0 is at rest (no command outstanding).
SEED_STATES = {
    CommandState.REQUESTED: 1,
    CommandState.COLLECTED: 2,
    CommandState.RESPONDED: 3,
}
# The seed's `command` field: the last operation applied to the device's command.
SEED_OPERATIONS = {
    CommandState.REQUESTED: "hw_command_request",
    CommandState.COLLECTED: "hw_command_retrieval",
    CommandState.RESPONDED: "hw_response_provide",
    CommandState.ANALYZED: "server_analysis_provide",
}


def utc_now_ms() -> str:
    """The current time as ISO 8601 UTC to the millisecond (a round trip takes milliseconds)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def epoch_seconds(iso: str) -> float:
    """An ISO 8601 UTC time (as `utc_now_ms` writes it) as seconds since the epoch."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def command_info(command: CommandRecord) -> dict[str, Any]:
    """The wire form of a command (DESIGN section 7), as `command-show` and /events give it."""
    return {
        "id": command.id,
        "user": command.user,
        "node": command.node,
        "state": command.state.value,
        "code": command.code,
        "interpreter": command.interpreter,
        "timeout": command.timeout,
        "pickup": command.pickup,
        "lite": command.lite,
        "response": command.response,
        "exit-code": command.exit_code,
        "duration": command.duration,
        "analysis": command.analysis,
        "reason": command.reason,
        "created": command.created,
        "collected": command.collected,
        "responded": command.responded,
        "analyzed": command.analyzed,
        "ended": command.ended,
        "history": [{"state": s.state, "at": s.at, "by": s.by} for s in command.history],
    }


def commands_info(commands: Iterable[CommandRecord]) -> dict[str, dict[str, Any]]:
    """Commands in their wire form, keyed by id (as a string: JSON keys are strings)."""
    return {str(c.id): command_info(c) for c in commands}


def command_order(command: CommandRecord) -> dict[str, Any]:
    """What an agent node collects: the program and how to run it."""
    return {
        "id": command.id,
        "code": command.code,
        "interpreter": command.interpreter,
        "timeout": command.timeout,
    }


def blank_device_status(user: str) -> dict[str, Any]:
    """The seed's status fields when the caller may not see the device's."""
    return {
        "user": user,
        "state": None,
        "command": "",
        "hw_command": "",
        "hw_response": "",
        "server_analysis": "",
        "time": "",
        "time-iso": "",
        "login": False,  # the seed's field: the caller may not see this device
    }


def device_status(node: str, last: CommandRecord | None) -> dict[str, Any]:
    """The seed's status fields for a device whose newest command is `last`, plus `id` and
    `state-name`; a device with no command is at rest (state 0)."""
    if last is None:
        blank = blank_device_status(node)
        return {**blank, "state": 0, "login": True, "id": None, "state-name": None}
    steps = last.history
    at = steps[-1].at if steps else last.created
    return {
        "user": node,
        "state": SEED_STATES.get(last.state, 0),
        "command": SEED_OPERATIONS.get(last.state, last.state.value),
        "hw_command": last.code,
        "hw_response": last.response or "",
        "server_analysis": last.analysis or "",
        # The seed's `time` is epoch seconds; `time-iso` the same instant, readable.
        "time": epoch_seconds(at),
        "time-iso": at,
        "login": True,
        "id": last.id,
        "state-name": last.state.value,
    }
