"""Clone and update a project's checkout with git: never prompting, never hanging.

Synchronous on purpose; the agent calls these through `asyncio.to_thread`. Every git command
runs in its own session (no controlling terminal), with credential prompts turned off and a
time limit, and a failure becomes `GitError` carrying git's own reason on one line with any
`user:password@` removed from URLs.

A `ref` is a branch, a tag or a commit sha, looked up in that order; None follows the branch
the checkout is on (after a fresh clone, the remote's default branch). The node owns the
checkout: moving to a new commit discards changes to tracked files but keeps untracked ones,
such as `project.variables`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import git
from git.exc import (
    GitCommandNotFound,
    InvalidGitRepositoryError,
    NoSuchPathError,
    UnsafeProtocolError,
)

from syncopate.errors import SyncopateError
from syncopate.validate import check_git_url

DEFAULT_TIMEOUT = 300.0
"""Seconds a single git command may run before it is killed."""

_REMOTE = "origin"
_TRACKING_PREFIX = f"refs/remotes/{_REMOTE}/"
_HEX_RE = re.compile(r"[0-9a-fA-F]{4,40}")
_FULL_SHA_RE = re.compile(r"[0-9a-f]{40}")
_CREDENTIALS_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_NOISE_PREFIXES = ("Cloning into", "hint:", "From ", "remote: Enumerating", "remote: Counting")
_MAX_REASON = 400


class GitError(SyncopateError):
    """A git operation failed; the message says why, on one line, without credentials."""


@dataclass(frozen=True)
class _Target:
    """Where a checkout should be: a commit, and the local branch to hold it (None: detached)."""

    commit: str
    branch: str | None = None
    upstream: str | None = None


def redact(text: str) -> str:
    """`text` with the `user:password@` part of every URL in it removed."""
    return _CREDENTIALS_RE.sub(r"\g<scheme>", text)


def clone(url: str, ref: str | None, dest: Path, *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Clone `url` into `dest`, check out `ref`, and return the checked-out commit sha.

    `dest` must not exist or be empty. The clone is made in a hidden sibling directory and
    renamed into place only when complete, so a half clone never looks like a checkout;
    on failure nothing is left behind.
    """
    _check_url(url, "clone")
    _check_ref(ref)
    if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        raise GitError(f"cannot clone into {dest}: it exists and is not an empty directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{dest.name}.clone-"
    _remove_stale_staging(dest.parent, prefix)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=dest.parent)).absolute()
    try:
        _git(dest.parent, "clone", "--quiet", "--", url, str(staging), timeout=timeout)
        if ref is not None:
            _move_to(staging, _resolve(staging, ref, timeout), timeout)
        commit = _head(staging, timeout)
        os.replace(staging, dest)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise GitError(f"cannot clone into {dest}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return commit


def update(
    dest: Path,
    ref: str | None,
    *,
    url: str | None = None,
    retarget: bool = False,
    avoid: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[str, bool]:
    """Fetch from origin and move the checkout at `dest` to `ref`'s commit.

    Returns (commit, changed): the commit now checked out, and whether it differs from the
    one checked out before. A branch is hard-reset to the remote's state; local changes to
    tracked files are discarded, untracked files (project.variables) are kept. `url`, when
    given, becomes origin's URL first (the project's URL was changed in place); `retarget`
    (its URL or ref changed) makes no ref mean the remote's default branch, not the branch
    checked out now. When `ref`'s commit is `avoid` (a bad commit the node rolled back from),
    the checkout stays where it is.
    """
    _check_ref(ref)
    if not is_checkout(dest):
        raise GitError(f"{dest} is not a git checkout; clone it first")
    if url is not None and url != origin_url(dest):
        _check_url(url, "fetch")
        _git(dest, "remote", "set-url", _REMOTE, url, timeout=timeout)
    status, url, _ = _git_status(dest, "config", "--get", f"remote.{_REMOTE}.url", timeout=timeout)
    if status != 0 or not url:
        raise GitError(f"the checkout at {dest} has no '{_REMOTE}' remote to fetch from")
    _check_url(url, "fetch")
    # --force: a tag moved on the remote is taken as it is now, not refused as a clobber.
    _git(dest, "fetch", "--quiet", "--prune", "--force", "--tags", _REMOTE, timeout=timeout)
    if retarget and ref is None:
        _git(dest, "remote", "set-head", _REMOTE, "--auto", timeout=timeout)
        target = _default_branch(dest, timeout)
    else:
        target = _resolve(dest, ref, timeout)
    before = _head(dest, timeout)
    if avoid is not None and target.commit == avoid:
        return before, False
    if before != target.commit or _current_branch(dest, timeout) != target.branch:
        _move_to(dest, target, timeout)
    return target.commit, before != target.commit


def check_out(dest: Path, commit: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Move the checkout at `dest` to `commit`, which it holds already (a rollback).

    `reset --hard` keeps the branch (and the upstream it follows) and untracked files such as
    project.variables; the next `update` moves the branch on when a newer commit arrives.
    """
    if not _FULL_SHA_RE.fullmatch(commit):
        raise GitError(f"{commit!r} is not a full commit sha")
    _git(dest, "reset", "--quiet", "--hard", commit, "--", timeout=timeout)
    if _head(dest, timeout) != commit:
        raise GitError(f"checkout at {dest} did not arrive at commit {commit}")


def follows_branch(dest: Path, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether the checkout is on a branch (False: a tag or commit pinned by --ref, detached)."""
    return _current_branch(dest, timeout) is not None


def origin_url(dest: Path, *, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """The URL of the checkout's origin remote, or None when it has none."""
    status, url, _ = _git_status(dest, "config", "--get", f"remote.{_REMOTE}.url", timeout=timeout)
    return url.strip() if status == 0 and url.strip() else None


def head_commit(dest: Path) -> str | None:
    """The commit sha checked out at `dest`, or None when it is not a checkout with a commit."""
    try:
        with git.Repo(dest) as repo:
            if repo.bare:
                return None
            return repo.head.commit.hexsha
    except (InvalidGitRepositoryError, NoSuchPathError, ValueError):
        return None


def subject(dest: Path, commit: str, *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The first line of `commit`'s message ("" when git cannot say)."""
    status, text, _ = _git_status(dest, "log", "-1", "--format=%s", commit, "--", timeout=timeout)
    return text.strip() if status == 0 else ""


def is_checkout(dest: Path) -> bool:
    """Whether `dest` is the top of a non-bare git working tree."""
    try:
        with git.Repo(dest) as repo:
            tree = repo.working_tree_dir
            return not repo.bare and tree is not None and Path(tree).resolve() == dest.resolve()
    except (InvalidGitRepositoryError, NoSuchPathError):
        return False


def _check_url(url: str, verb: str) -> None:
    """Refuse URLs that could run commands or be read as options, before git ever sees them."""
    try:
        check_git_url(url)
        # gitpython's own guard, as a second lock on the same door.
        git.Git.check_unsafe_protocols(url)
    except (ValueError, UnsafeProtocolError) as exc:
        raise GitError(f"refusing to {verb}: {redact(str(exc))}") from None


def _check_ref(ref: str | None) -> None:
    if ref is None:
        return
    if not ref or ref.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in ref):
        raise GitError(
            f"ref {ref!r} is not valid: give a branch, tag or commit sha "
            "(not empty, no leading '-', no spaces)"
        )


def _resolve(repo_dir: Path, ref: str | None, timeout: float) -> _Target:
    """The commit (and branch) that `ref` names in the fetched repository at `repo_dir`."""
    if ref is None:
        return _followed_branch(repo_dir, timeout)
    upstream = _TRACKING_PREFIX + ref
    commit = _commit_of(repo_dir, upstream, timeout)
    if commit is not None:
        return _Target(commit, branch=ref, upstream=upstream)
    commit = _commit_of(repo_dir, f"refs/tags/{ref}", timeout)
    if commit is not None:
        return _Target(commit)
    if _HEX_RE.fullmatch(ref):
        sha = ref.lower()
        commit = _commit_of(repo_dir, sha, timeout)
        if commit is None and _FULL_SHA_RE.fullmatch(sha):
            # A commit on no branch or tag: many servers hand it out when asked by sha.
            _git_status(repo_dir, "fetch", "--quiet", _REMOTE, sha, timeout=timeout)
            commit = _commit_of(repo_dir, sha, timeout)
        if commit is not None:
            return _Target(commit)
    raise GitError(
        f"ref {ref!r} not found in {_origin(repo_dir, timeout)}: "
        "no branch, tag or commit by that name"
    )


def _followed_branch(repo_dir: Path, timeout: float) -> _Target:
    """The branch followed when no ref is given: the current one's upstream, else origin/HEAD."""
    branch = _current_branch(repo_dir, timeout)
    if branch is not None:
        _, upstream, _ = _git_status(
            repo_dir,
            "for-each-ref",
            "--format=%(upstream)",
            f"refs/heads/{branch}",
            timeout=timeout,
        )
        if upstream:
            commit = _commit_of(repo_dir, upstream, timeout)
            if commit is None:
                raise GitError(
                    f"branch {upstream.removeprefix(_TRACKING_PREFIX)!r} no longer exists "
                    f"in {_origin(repo_dir, timeout)}"
                )
            return _Target(commit, branch=branch, upstream=upstream)
    return _default_branch(repo_dir, timeout)


def _default_branch(repo_dir: Path, timeout: float) -> _Target:
    """The remote's default branch (origin/HEAD), to be followed."""
    status, default, _ = _git_status(
        repo_dir, "symbolic-ref", "-q", f"{_TRACKING_PREFIX}HEAD", timeout=timeout
    )
    commit = _commit_of(repo_dir, default, timeout) if status == 0 and default else None
    if commit is None:
        raise GitError(
            f"cannot tell which branch the checkout at {repo_dir} follows; give a ref "
            "(a branch, tag or commit)"
        )
    return _Target(commit, branch=default.removeprefix(_TRACKING_PREFIX), upstream=default)


def _move_to(repo_dir: Path, target: _Target, timeout: float) -> None:
    """Check out `target`, discarding changes to tracked files and keeping untracked ones.

    `checkout --force` resets tracked files as `reset --hard` does, and also moves to another
    branch or a detached commit; it never deletes untracked files (no `clean`).
    """
    where: tuple[str, ...]
    if target.branch is None:
        where = ("--detach", target.commit)
    elif target.upstream is None:
        where = ("--no-track", "-B", target.branch, target.commit)
    else:
        where = ("--track", "-B", target.branch, target.upstream)
    _git(repo_dir, "checkout", "--quiet", "--force", *where, "--", timeout=timeout)
    if _head(repo_dir, timeout) != target.commit:
        raise GitError(f"checkout at {repo_dir} did not arrive at commit {target.commit}")


def _current_branch(repo_dir: Path, timeout: float) -> str | None:
    status, name, _ = _git_status(
        repo_dir, "symbolic-ref", "-q", "--short", "HEAD", timeout=timeout
    )
    return name if status == 0 and name else None


def _commit_of(repo_dir: Path, name: str, timeout: float) -> str | None:
    status, sha, _ = _git_status(
        repo_dir, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", timeout=timeout
    )
    return sha if status == 0 and _FULL_SHA_RE.fullmatch(sha) else None


def _head(repo_dir: Path, timeout: float) -> str:
    commit = _commit_of(repo_dir, "HEAD", timeout)
    if commit is None:
        raise GitError(f"the checkout at {repo_dir} has no commit checked out (empty repository?)")
    return commit


def _origin(repo_dir: Path, timeout: float) -> str:
    _, url, _ = _git_status(repo_dir, "config", "--get", f"remote.{_REMOTE}.url", timeout=timeout)
    return redact(url) if url else _REMOTE


def _remove_stale_staging(parent: Path, prefix: str) -> None:
    """Remove half clones left by an agent that died mid-clone."""
    for entry in parent.iterdir():
        if entry.name.startswith(prefix) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def _environment() -> dict[str, str]:
    """Variables that stop git (and ssh, and credential managers) from asking anybody anything."""
    return {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": shutil.which("true") or "/bin/true",
        "SSH_ASKPASS_REQUIRE": "never",
        "GCM_INTERACTIVE": "never",
    }


def _git(cwd: Path, *args: str, timeout: float) -> str:
    """Run `git args` in `cwd`; its stdout, or GitError with git's reason."""
    status, stdout, stderr = _git_status(cwd, *args, timeout=timeout)
    if status != 0:
        raise GitError(f"git {args[0]} failed: {_reason(stderr, status)}")
    return stdout


def _git_status(cwd: Path, *args: str, timeout: float) -> tuple[int, str, str]:
    """Run `git args` in `cwd` and return (status, stdout, stderr), raising only on a timeout.

    Runs in a new session so that neither git nor ssh can reach a terminal to prompt on.
    """
    try:
        status, stdout, stderr = git.Git(cwd).execute(
            ["git", *args],
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=timeout,
            env=_environment(),
            start_new_session=True,
        )
    except GitCommandNotFound:
        raise GitError("git is not installed (or not on PATH); install git on this node") from None
    if stderr.startswith("Timeout:"):  # gitpython killed it and put this in stderr
        raise GitError(f"git {args[0]} did not finish within {timeout:g} s and was stopped")
    return status, stdout.strip(), stderr


def _reason(stderr: str, status: int) -> str:
    """The first meaningful line of git's stderr, without its 'fatal:' and without credentials."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    chosen = next((line for line in lines if line.startswith(("fatal:", "error:"))), None)
    if chosen is None:
        chosen = next((line for line in lines if not line.startswith(_NOISE_PREFIXES)), None)
    if chosen is None:
        return f"git exited with status {status}"
    for prefix in ("fatal:", "error:"):
        chosen = chosen.removeprefix(prefix).strip()
    reason = redact(chosen)
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 1] + "…"
