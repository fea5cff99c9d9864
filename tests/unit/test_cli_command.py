"""The pure parts of `syncopate command`: exit statuses and how responses are printed."""

from __future__ import annotations

from typing import Any

import pytest

from syncopate.cli.command import print_responses
from syncopate.command_results import exit_status


@pytest.mark.parametrize(
    ("info", "status"),
    [
        ({"state": "responded", "exit-code": 0, "response": "ok"}, 0),
        ({"state": "responded", "exit-code": 3, "response": ""}, 3),
        ({"state": "analyzed", "exit-code": 300, "response": ""}, 255),
        ({"state": "responded", "exit-code": -9, "response": ""}, 137),
        ({"state": "responded", "exit-code": 124, "response": "TIMEOUT"}, 124),
        ({"state": "responded", "exit-code": None, "response": "TIMEOUT"}, 124),
        ({"state": "timed-out", "exit-code": None, "response": None}, 124),
        ({"state": "canceled", "exit-code": None, "response": None}, 1),
        ({"state": "responded", "exit-code": None, "response": "from a lite device"}, 0),
    ],
)
def test_exit_status_is_what_a_shell_would_show(info: dict[str, Any], status: int) -> None:
    assert exit_status(info) == status


def test_one_response_is_printed_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    status = print_responses(
        [{"node": "pi-1", "state": "responded", "exit-code": 0, "response": "a"}]
    )
    assert (status, capsys.readouterr().out) == (0, "a\n")


def test_several_are_labelled_by_node_and_the_first_failure_is_the_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = print_responses(
        [
            {"id": 3, "node": "pi-2", "state": "responded", "exit-code": 2, "response": "two\n"},
            {"id": 2, "node": "pi-1", "state": "responded", "exit-code": 0, "response": "one\n"},
            {"id": 4, "node": "pi-3", "state": "timed-out", "reason": "not collected within 1s"},
        ]
    )
    out, err = capsys.readouterr()
    assert status == 2
    assert out == "── pi-1 · exit 0 ──\none\n── pi-2 · exit 2 ──\ntwo\n"
    assert err == "error: command 4 on pi-3 timed out: not collected within 1s\n"
