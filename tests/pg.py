"""A real PostgreSQL server for the tests: initdb and pg_ctl in a scratch directory, one server
per test process, a new database for each test that asks for one.

PostgreSQL refuses to run as root, so under root (CI) the server runs as an unprivileged user
(`postgres` when the package made one, else `nobody`). Where no PostgreSQL is installed, or
psycopg is missing, the tests that need one skip and say why.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

USER = "syncopate"  # the server's superuser (trust authentication, loopback only)


def pg_bin() -> Path | None:
    """The directory of initdb and pg_ctl: the newest /usr/lib/postgresql/N/bin, or PATH's."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def why_not() -> str | None:
    """Why no server can be started here (None: it can)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    if pg_bin() is None:
        return "PostgreSQL is not installed (initdb not found; apt-get install postgresql)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as, under root; None: as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run as")


@contextlib.contextmanager
def running_server() -> Iterator[PgServer]:
    """A server for as long as the block runs; skips the test, saying why, where none can."""
    import pytest

    reason = why_not()
    if reason is not None:
        pytest.skip(reason)
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class PgServer:
    """A running server; `database()` makes a new empty database and returns its URL."""

    folder: Path
    port: int
    bin: Path
    user: pwd.struct_passwd | None
    options: str = ""  # the server's command-line settings (port, socket dir)
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def start(cls) -> PgServer:
        reason = why_not()
        if reason is not None:
            raise RuntimeError(reason)
        folder = Path(tempfile.mkdtemp(prefix="syncopate-pg-"))
        user = _run_as()
        if user is not None:
            os.chown(folder, user.pw_uid, user.pw_gid)
        bin_dir = pg_bin()
        assert bin_dir is not None
        server = cls(folder, _free_port(), bin_dir, user)
        server._run("initdb", "-D", str(folder / "data"), "-U", USER, "--auth=trust",
                    "-E", "UTF8", "--no-sync")  # fmt: skip
        options = (
            f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=16MB "
            # The tests kill managers, and stop the server at once, never the machine: what
            # the server wrote is in the OS's hands either way, so fsync only costs time.
            "-c fsync=off -c full_page_writes=off"
        )
        server.options = options
        server._run("pg_ctl", "-D", str(folder / "data"), "-l", str(folder / "log"), "-w",
                    "-o", options, "start")  # fmt: skip
        return server

    def _run(self, tool: str, *args: str) -> None:
        kwargs: dict[str, Any] = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid}
        done = subprocess.run(
            [str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            cwd=self.folder,
            check=False,
            **kwargs,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new, empty database for one fleet: its URL. A schema of its own in a shared
        database (as a fleet may be kept), made in a millisecond where CREATE DATABASE takes
        a tenth of a second, hundreds of times a run."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {name}")
        return self.url("postgres") + f"?options=-csearch_path%3D{name}"

    def restart(self) -> None:
        """Stop the server at once (every session cut, as by a crash) and start it again."""
        data = str(self.folder / "data")
        self._run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        self._run("pg_ctl", "-D", data, "-l", str(self.folder / "log"), "-w", "-o", self.options,
                  "start")  # fmt: skip

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
