"""The main screen's node keys that ask first: `D` drain, `u` undrain, `F` forget.

Each acts on the selected node (or the node of the selected project). A key the node's state
makes pointless (undrain a node that is not drained, forget one that is alive, which the
manager refuses) says why in a toast instead of asking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncopate.tui.screens import drain_question, forget_question, undrain_question

if TYPE_CHECKING:
    from syncopate.tui.app import SyncopateApp


def drain(app: SyncopateApp) -> None:
    if node := app.selected_node():
        info = app.model.nodes.get(node, {})
        app.confirm_then_act("Drain", node, drain_question(node, info), lambda c: c.drain(node))


def undrain(app: SyncopateApp) -> None:
    if node := app.selected_node():
        info = app.model.nodes.get(node, {})
        if not info.get("drained"):
            app.notify(f"{node} is not drained", severity="warning")
            return
        question = undrain_question(node, info)
        app.confirm_then_act("Undrain", node, question, lambda c: c.undrain(node))


def forget(app: SyncopateApp) -> None:
    if node := app.selected_node():
        info = app.model.nodes.get(node, {})
        if info.get("status") == "alive":
            app.notify(
                f"{node} is alive: only a dead node can be forgotten "
                "(drain it and stop its agent first)",
                severity="warning",
            )
            return
        question = forget_question(node, info)
        app.confirm_then_act("Forget", node, question, lambda c: c.forget(node))
