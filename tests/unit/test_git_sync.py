"""Git sync against real repositories in tmp_path, reached through file:// URLs."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from syncopate.node import git_sync
from syncopate.node.git_sync import GitError, clone, head_commit, is_checkout, update


@pytest.fixture(autouse=True)
def hermetic_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """No global or system git config (credential helpers, url rewrites) leaks into a test."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def run_git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


class Upstream:
    """A repository playing the remote: commits made here are what a push would deliver."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        path.mkdir(parents=True)
        self.path = path
        self.git("init", "--quiet", f"--initial-branch={branch}")
        self.git("config", "user.name", "Test")
        self.git("config", "user.email", "test@example.invalid")

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str) -> str:
        return run_git(self.path, *args)

    def commit(self, name: str, text: str) -> str:
        (self.path / name).write_text(text)
        self.git("add", name)
        self.git("commit", "--quiet", "-m", f"write {name}")
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    repo = Upstream(tmp_path / "upstream")
    repo.commit("run.sh", "echo one\n")
    return repo


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    path = tmp_path / "projects"
    path.mkdir()
    return path


# --- clone -------------------------------------------------------------------------------------


def test_clone_default_branch_returns_its_head(tmp_path: Path, projects: Path) -> None:
    remote = Upstream(tmp_path / "remote", branch="trunk")
    remote.commit("a.txt", "a\n")
    trunk = remote.commit("b.txt", "b\n")
    remote.git("checkout", "--quiet", "-b", "feature")
    remote.commit("c.txt", "c\n")
    remote.git("checkout", "--quiet", "trunk")
    dest = projects / "app"

    assert clone(remote.url, None, dest) == trunk
    assert head_commit(dest) == trunk
    assert is_checkout(dest)
    assert (dest / "b.txt").read_text() == "b\n"
    assert not (dest / "c.txt").exists()
    assert sorted(p.name for p in projects.iterdir()) == ["app"]  # no staging dir left


@pytest.mark.parametrize("annotated", [True, False], ids=["annotated", "lightweight"])
def test_clone_at_tag(upstream: Upstream, projects: Path, annotated: bool) -> None:
    tagged = upstream.git("rev-parse", "HEAD")
    upstream.git("tag", *(["-a", "-m", "release"] if annotated else []), "v1.0")
    upstream.commit("run.sh", "echo two\n")

    dest = projects / "app"
    assert clone(upstream.url, "v1.0", dest) == tagged
    assert (dest / "run.sh").read_text() == "echo one\n"


def test_clone_at_branch(upstream: Upstream, projects: Path) -> None:
    upstream.git("checkout", "--quiet", "-b", "stable")
    stable = upstream.commit("run.sh", "echo stable\n")
    upstream.git("checkout", "--quiet", "main")

    dest = projects / "app"
    assert clone(upstream.url, "stable", dest) == stable
    assert run_git(dest, "symbolic-ref", "--short", "HEAD") == "stable"
    assert (dest / "run.sh").read_text() == "echo stable\n"


@pytest.mark.parametrize("length", [40, 10])
def test_clone_at_sha(upstream: Upstream, projects: Path, length: int) -> None:
    first = upstream.git("rev-parse", "HEAD")
    upstream.commit("run.sh", "echo two\n")

    dest = projects / "app"
    assert clone(upstream.url, first[:length], dest) == first
    assert (dest / "run.sh").read_text() == "echo one\n"


def test_clone_of_a_missing_repository_gives_gits_reason(tmp_path: Path, projects: Path) -> None:
    dest = projects / "app"
    with pytest.raises(GitError, match="does not appear to be a git repository") as caught:
        clone((tmp_path / "nothing-here").as_uri(), None, dest)
    assert "\n" not in str(caught.value)
    assert not dest.exists()
    assert list(projects.iterdir()) == []


def test_clone_of_a_missing_ref_names_it_and_leaves_nothing(
    upstream: Upstream, projects: Path
) -> None:
    dest = projects / "app"
    with pytest.raises(GitError, match="'no-such-branch' not found"):
        clone(upstream.url, "no-such-branch", dest)
    assert not dest.exists()
    assert list(projects.iterdir()) == []


@pytest.mark.parametrize(
    "template",
    [
        "ext::sh -c touch% {marker}",
        "ext::sh -c touch {marker}",
        "--upload-pack=touch {marker}",
        "-u touch {marker}",
        "-utouch",
    ],
)
def test_unsafe_urls_are_refused_before_git_runs(
    tmp_path: Path, projects: Path, template: str
) -> None:
    marker = tmp_path / "pwned"
    dest = projects / "app"
    with pytest.raises(GitError, match="refusing to clone"):
        clone(template.format(marker=marker), None, dest)
    assert not marker.exists()
    assert not dest.exists()
    assert list(projects.iterdir()) == []  # refused before even making a staging directory


def test_gitpython_guard_still_refuses_ext_if_our_check_were_gone(
    tmp_path: Path, projects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(git_sync, "check_git_url", lambda url: url)
    marker = tmp_path / "pwned"
    with pytest.raises(GitError, match=r"refusing to clone.*ext::"):
        clone(f"ext::sh -c touch% {marker}", None, projects / "app")
    assert not marker.exists()


def test_clone_refuses_a_non_empty_destination(upstream: Upstream, projects: Path) -> None:
    dest = projects / "app"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(GitError, match="not an empty directory"):
        clone(upstream.url, None, dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_clone_into_an_existing_empty_directory(upstream: Upstream, projects: Path) -> None:
    dest = projects / "app"
    dest.mkdir()
    assert clone(upstream.url, None, dest) == upstream.git("rev-parse", "HEAD")
    assert is_checkout(dest)


def test_clone_into_a_relative_path(
    upstream: Upstream, projects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(projects.parent)
    assert clone(upstream.url, None, Path("projects") / "app") == upstream.git("rev-parse", "HEAD")
    assert is_checkout(projects / "app")
    assert update(Path("projects") / "app", None)[1] is False


def test_clone_removes_a_half_clone_left_by_a_crash(upstream: Upstream, projects: Path) -> None:
    stale = projects / ".app.clone-abc123"
    (stale / ".git").mkdir(parents=True)
    clone(upstream.url, None, projects / "app")
    assert sorted(p.name for p in projects.iterdir()) == ["app"]


# --- update ------------------------------------------------------------------------------------


def test_update_follows_new_commits_then_reports_no_change(
    upstream: Upstream, projects: Path
) -> None:
    dest = projects / "app"
    first = clone(upstream.url, None, dest)
    second = upstream.commit("run.sh", "echo two\n")

    assert update(dest, None) == (second, True)
    assert head_commit(dest) == second != first
    assert (dest / "run.sh").read_text() == "echo two\n"
    assert update(dest, None) == (second, False)


def test_update_keeps_untracked_files_and_discards_local_edits(
    upstream: Upstream, projects: Path
) -> None:
    dest = projects / "app"
    clone(upstream.url, None, dest)
    (dest / "project.variables").write_text('{"count": 7}')
    (dest / "run.sh").write_text("echo tampered\n")
    second = upstream.commit("run.sh", "echo two\n")

    assert update(dest, None) == (second, True)
    assert (dest / "project.variables").read_text() == '{"count": 7}'
    assert (dest / "run.sh").read_text() == "echo two\n"


def test_update_on_a_branch_follows_that_branch(upstream: Upstream, projects: Path) -> None:
    upstream.git("checkout", "--quiet", "-b", "stable")
    upstream.commit("run.sh", "echo stable\n")
    dest = projects / "app"
    clone(upstream.url, "stable", dest)

    newer = upstream.commit("run.sh", "echo stable 2\n")
    upstream.git("checkout", "--quiet", "main")
    upstream.commit("other.txt", "main moves too\n")

    assert update(dest, "stable") == (newer, True)
    assert update(dest, None) == (newer, False)  # None keeps following the branch checked out


def test_update_hard_resets_a_force_pushed_branch(upstream: Upstream, projects: Path) -> None:
    base = upstream.git("rev-parse", "HEAD")
    upstream.commit("run.sh", "echo doomed\n")
    dest = projects / "app"
    clone(upstream.url, None, dest)

    upstream.git("reset", "--quiet", "--hard", base)
    rewritten = upstream.commit("run.sh", "echo rewritten\n")

    assert update(dest, None) == (rewritten, True)
    assert (dest / "run.sh").read_text() == "echo rewritten\n"


def test_update_switches_ref(upstream: Upstream, projects: Path) -> None:
    first = upstream.git("rev-parse", "HEAD")
    upstream.git("tag", "v1")
    upstream.git("checkout", "--quiet", "-b", "feature")
    feature = upstream.commit("feature.txt", "f\n")
    upstream.git("checkout", "--quiet", "main")
    dest = projects / "app"
    assert clone(upstream.url, None, dest) == first

    assert update(dest, "feature") == (feature, True)
    assert run_git(dest, "symbolic-ref", "--short", "HEAD") == "feature"
    assert update(dest, "v1") == (first, True)
    assert not (dest / "feature.txt").exists()
    assert update(dest, "main") == (first, False)
    assert run_git(dest, "symbolic-ref", "--short", "HEAD") == "main"  # on the branch again


def test_update_takes_a_moved_tag(upstream: Upstream, projects: Path) -> None:
    upstream.git("tag", "-a", "-m", "first", "release")
    dest = projects / "app"
    clone(upstream.url, "release", dest)

    newer = upstream.commit("run.sh", "echo two\n")
    upstream.git("tag", "-f", "-a", "-m", "moved", "release")

    assert update(dest, "release") == (newer, True)


def test_update_to_a_missing_ref_names_it(upstream: Upstream, projects: Path) -> None:
    dest = projects / "app"
    before = clone(upstream.url, None, dest)
    with pytest.raises(GitError, match="'v9' not found"):
        update(dest, "v9")
    assert head_commit(dest) == before


def test_update_of_a_branch_deleted_upstream_says_so(upstream: Upstream, projects: Path) -> None:
    upstream.git("branch", "gone")
    dest = projects / "app"
    clone(upstream.url, "gone", dest)
    upstream.git("branch", "-D", "gone")
    with pytest.raises(GitError, match="'gone' no longer exists"):
        update(dest, None)


def test_update_of_something_that_is_not_a_checkout(projects: Path) -> None:
    with pytest.raises(GitError, match="not a git checkout"):
        update(projects, None)


def test_refs_that_look_like_options_are_refused(upstream: Upstream, projects: Path) -> None:
    with pytest.raises(GitError, match="not valid"):
        clone(upstream.url, "--orphan=x", projects / "app")
    assert list(projects.iterdir()) == []


# --- head_commit / is_checkout -----------------------------------------------------------------


def test_not_a_checkout(upstream: Upstream, tmp_path: Path) -> None:
    inside = upstream.path / "sub"
    inside.mkdir()
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    for path in (tmp_path / "missing", empty, inside):
        assert not is_checkout(path)
        assert head_commit(path) is None


def test_empty_repository_has_no_head_commit(tmp_path: Path) -> None:
    empty = Upstream(tmp_path / "empty")
    assert is_checkout(empty.path)
    assert head_commit(empty.path) is None


# --- never prompt, never hang ------------------------------------------------------------------


class AlwaysUnauthorized(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def auth_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), AlwaysUnauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/repo.git"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_credentials_are_never_prompted_for(auth_server: str, projects: Path) -> None:
    with pytest.raises(GitError, match="Authentication failed"):
        clone(auth_server, None, projects / "app", timeout=60)
    assert list(projects.iterdir()) == []


@pytest.mark.parametrize("served", [True, False], ids=["git-failed", "refused-by-us"])
def test_credentials_in_the_url_stay_out_of_the_message(
    auth_server: str, projects: Path, served: bool
) -> None:
    url = auth_server.replace("http://", "http://alice:s3cret@")
    if not served:
        url = "https://alice:s3cret@/repo.git"  # no host: our check quotes the URL back
    with pytest.raises(GitError, match="Authentication failed" if served else "no host") as caught:
        clone(url, None, projects / "app", timeout=60)
    assert "s3cret" not in str(caught.value)
    assert "alice" not in str(caught.value)


def test_a_silent_server_is_given_up_on(projects: Path) -> None:
    # A listening socket nobody answers: the connection is accepted by the kernel, then silence.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"git://127.0.0.1:{silent.getsockname()[1]}/repo.git"
        with pytest.raises(GitError, match=r"did not finish within 0\.5 s"):
            clone(url, None, projects / "app", timeout=0.5)
    assert list(projects.iterdir()) == []


def test_redact_removes_user_and_password() -> None:
    text = "unable to access 'https://bob:tok3n@host/r.git/' and ssh://git@host/r"
    assert git_sync.redact(text) == "unable to access 'https://host/r.git/' and ssh://host/r"
