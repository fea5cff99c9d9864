"""`syncopate project rollout NAME`'s text, from a project's `status` answer."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from syncopate.cli.main import app
from syncopate.cli.rollout import rollout_lines

C1, C2 = "1" * 40, "2" * 40


def info(**fields: Any) -> dict[str, Any]:
    base = {"status": "running", "node": "pi-1", "commit": C1, "grace": 60.0}
    base.update({"good-commit": None, "bad-commit": None, "bad-reason": None})
    return base | fields


def test_rolled_back_names_the_good_and_the_bad_commit_and_how_to_retry() -> None:
    shown = rollout_lines(
        "web",
        info(status="rolled-back", **{"good-commit": C1, "bad-commit": C2, "bad-reason": "boom"}),
    )
    assert shown == [
        "web: rolled-back on pi-1",
        "  commit      1111111 (the last good commit)",
        "  last good   1111111",
        "  bad commit  2222222: boom",
        "  not run again until a newer commit or `syncopate project rollout web --retry`",
    ]


def test_a_commit_not_yet_proven_and_no_node() -> None:
    shown = rollout_lines("web", info(node=None, grace=2.0, **{"good-commit": None}))
    assert shown == [
        "web: running",
        "  commit      1111111 (has not run well for its grace of 2s yet)",
        "  last good   -",
        "  bad commit  none",
    ]


def test_rollout_is_a_project_command_with_retry() -> None:
    done = CliRunner().invoke(app, ["project", "rollout", "--help"])
    assert done.exit_code == 0
    assert "--retry" in done.output
