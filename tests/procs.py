"""The manager as a real subprocess (`python -m syncopate manager serve`), for tests that kill it.

manager = ManagerProcess(tmp_path / "manager", password="pw")
try:
    url = manager.start()       # waits for "Syncopate manager listening on URL"
    ...
    manager.kill()              # SIGKILL, like a crash or a power cut of the process
    url = manager.start()       # the same data dir, a new port
finally:
    manager.stop()              # SIGTERM, then SIGKILL if it does not end in time
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from syncopate.client import ManagerClient

T = TypeVar("T")
LISTENING = re.compile(r"Syncopate manager listening on (https?://\S+)")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


class ManagerProcess:
    """One data dir; each `start()` runs a new manager process on it, on a fresh port."""

    def __init__(
        self,
        data_dir: Path,
        *,
        password: str | None = None,
        node_timeout: float = 30.0,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.password = password
        self.node_timeout = node_timeout
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.lines: list[str] = []  # everything the current process wrote (stdout and stderr)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None

    # running ----------------------------------------------------------------------------------
    def command(self) -> list[str]:
        args = [sys.executable, "-m", "syncopate", "manager", "serve"]
        args += ["--host", "127.0.0.1", "--port", "0", "--data-dir", str(self.data_dir)]
        args += ["--node-timeout", f"{self.node_timeout:g}"]
        if self.password is not None:
            args += ["--password", self.password]
        return args + self.extra_args

    def environment(self) -> dict[str, str]:
        """The test's environment without a join password or manager settings, plus `env`."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("SYNCOPATE_PASSWORD", "SYNCOPATE_MANAGER", "SYNCOPATE_TOKEN")
        }
        env["SYNCOPATE_HOME"] = str(self.data_dir.parent / "syncopate-home")
        env.update(self.env)
        return env

    def start(self, timeout: float = START_TIMEOUT) -> str:
        """Start the manager; return its URL once it says it is listening."""
        if self.running:
            raise RuntimeError("the manager is running already; kill() or stop() it first")
        self.lines = []
        self._queue = queue.Queue()
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.environment(),
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise AssertionError(
                    f"the manager did not say it was listening within {timeout}s:\n{self.output}"
                )
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait()
                self._finish()
                raise AssertionError(
                    f"the manager exited ({code}) before listening:\n{self.output}"
                )
            found = LISTENING.search(line)
            if found:
                self.url = found.group(1)
                return self.url

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the manager was not started"
        return self.proc.pid

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        """SIGKILL the manager (no cleanup on its side) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)
        self._finish()

    def stop(self) -> int | None:
        """SIGTERM the manager, SIGKILL it if it has not ended in time; its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        code = self.proc.returncode
        self._finish()
        return code

    def _finish(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=STOP_TIMEOUT)
            self._reader = None
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    # what it left on disk ---------------------------------------------------------------------
    @property
    def controller_file(self) -> Path:
        return self.data_dir / "controller.json"

    def controller_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.controller_file.read_text(encoding="utf-8"))
        return data

    @property
    def token(self) -> str:
        """The controller token from controller.json."""
        return str(self.controller_json()["token"])

    def client(self, token: str | None = None, **options: Any) -> ManagerClient:
        """A client of the running manager, with the controller token unless one is given."""
        return ManagerClient(self.url, token=self.token if token is None else token, **options)


@contextmanager
def manager_process(data_dir: Path, **options: Any) -> Iterator[ManagerProcess]:
    """A ManagerProcess (not started) that is stopped, whatever happens, on exit."""
    manager = ManagerProcess(data_dir, **options)
    try:
        yield manager
    finally:
        manager.stop()


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Call `check` until it returns something truthy (tests/helpers.wait_for, without asyncio)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
