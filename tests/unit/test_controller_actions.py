"""The /controller route's action table against the protocol's list of actions."""

from __future__ import annotations

from syncopate.manager.routes.controller import ACTION_HANDLERS
from syncopate.protocol import ACTIONS


def test_every_action_has_one_handler_and_no_handler_is_extra() -> None:
    assert tuple(ACTION_HANDLERS) == ACTIONS
