"""Real git repositories for tests, made in a temporary directory and used through file://."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


class Repo:
    """A work tree with commits; its URL is file:// to the folder itself."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, path: Path, files: dict[str, str], executable: tuple[str, ...] = ()) -> Repo:
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")
        git(path, "config", "user.email", "test@syncopate.invalid")
        git(path, "config", "user.name", "Syncopate test")
        repo = cls(path)
        repo.commit(files, "first", executable)
        return repo

    @classmethod
    def from_folder(cls, source: Path, path: Path) -> Repo:
        """A repository holding a copy of `source`'s files (executable bits kept)."""
        import os

        files = {
            str(f.relative_to(source)): f.read_text(encoding="utf-8")
            for f in sorted(source.rglob("*"))
            if f.is_file() and "__pycache__" not in f.parts
        }
        executable = tuple(name for name in files if os.access(source / name, os.X_OK))
        return cls.create(path, files, executable)

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()

    def commit(
        self, files: dict[str, str], message: str = "change", executable: tuple[str, ...] = ()
    ) -> str:
        """Write files, commit them, and return the new commit's sha."""
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            if name in executable:
                target.chmod(0o755)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return self.head()

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD")
