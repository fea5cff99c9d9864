"""Git for the rollout (DESIGN §12): back to a good commit, a bad one avoided, a pin told apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncopate.node.git_sync import (
    GitError,
    check_out,
    clone,
    follows_branch,
    head_commit,
    update,
)
from tests.unit.test_git_sync import Upstream


@pytest.fixture(autouse=True)
def hermetic_git(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    repo = Upstream(tmp_path / "upstream")
    repo.commit("run.sh", "echo one\n")
    return repo


def test_roll_back_avoid_the_bad_commit_then_take_a_newer_one(
    upstream: Upstream, tmp_path: Path
) -> None:
    dest = tmp_path / "projects" / "app"
    good = clone(upstream.url, None, dest)
    (dest / "project.variables").write_text('{"count": 7}')
    bad = upstream.commit("run.sh", "echo two\n")
    assert update(dest, None) == (bad, True)

    check_out(dest, good)  # the rollback
    assert head_commit(dest) == good and (dest / "run.sh").read_text() == "echo one\n"
    assert (dest / "project.variables").read_text() == '{"count": 7}'  # untracked: kept
    assert follows_branch(dest)  # still on main, still following origin/main
    # The bad commit is what the branch holds: avoided, the checkout stays at the good one.
    assert update(dest, None, avoid=bad) == (good, False)
    assert head_commit(dest) == good
    # A newer commit is taken.
    newer = upstream.commit("run.sh", "echo three\n")
    assert update(dest, None, avoid=bad) == (newer, True)
    assert (dest / "run.sh").read_text() == "echo three\n"
    # And without `avoid` (rollout --retry), the branch's commit is taken as before.
    check_out(dest, good)
    assert update(dest, None) == (newer, True)


def test_a_tag_or_commit_pin_follows_no_branch(upstream: Upstream, tmp_path: Path) -> None:
    first = upstream.git("rev-parse", "HEAD")
    upstream.git("tag", "v1")
    pinned = tmp_path / "pinned"
    clone(upstream.url, "v1", pinned)
    assert not follows_branch(pinned)
    by_sha = tmp_path / "by-sha"
    clone(upstream.url, first, by_sha)
    assert not follows_branch(by_sha)
    branch = tmp_path / "branch"
    clone(upstream.url, "main", branch)
    assert follows_branch(branch)


def test_check_out_refuses_what_is_not_a_full_sha_or_not_there(
    upstream: Upstream, tmp_path: Path
) -> None:
    dest = tmp_path / "app"
    clone(upstream.url, None, dest)
    with pytest.raises(GitError, match="not a full commit sha"):
        check_out(dest, "--hard")
    with pytest.raises(GitError, match="git reset failed"):
        check_out(dest, "0" * 40)
