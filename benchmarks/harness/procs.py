"""Processes for the benchmarks: subprocesses in their own sessions with output to a log file,
a `syncopate manager serve` on a free port, multiprocessing children driven over a pipe, whole
runs of a command timed, and `run_main`, which ends every one of them on exit, Ctrl-C and
SIGTERM included."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import multiprocessing
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import psutil

HOST = "127.0.0.1"
PASSWORD = "bench-password"
PY = sys.executable
LISTENING = r"Syncopate manager listening on (https?://\S+)"


async def receive(conn: Connection) -> Any:
    """Await one message on a pipe without a thread (so Ctrl-C never waits on a blocked read)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


@dataclass
class Child:
    """A multiprocessing child (spawned) and the parent's end of its pipe."""

    proc: BaseProcess
    conn: Connection
    timeout: float | None = None  # s to wait for an answer by default; None: no limit

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    async def ask(self, command: str, *args: Any, timeout: float | None = None) -> Any:
        """Send `(command, *args)`; the child's answer."""
        self.conn.send((command, *args))
        return await asyncio.wait_for(receive(self.conn), timeout or self.timeout)

    def end(self, wait: float = 10.0) -> None:
        """Give it `wait` s to return by itself, then SIGTERM, then SIGKILL."""
        self.proc.join(wait)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


@dataclass
class Processes:
    """Every process a benchmark started; `stop_all` ends them, the newest first."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    timeouts: dict[int, float] = field(default_factory=dict)  # pid -> s to stop after SIGTERM
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        command: list[str],
        log: Path,
        env: dict[str, str] | None = None,
        stop_timeout: float = 15.0,
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            # A session of its own: Ctrl-C reaches only this program, which ends the process.
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        self.procs.append(proc)
        self.timeouts[proc.pid] = stop_timeout
        return proc

    def spawn(self, target: Callable[..., None], *args: Any) -> Child:
        """Start `target(conn, *args)` in a spawned child; it is ended on exit."""
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        proc = context.Process(target=target, args=(child, *args), daemon=True)
        proc.start()
        child.close()
        self.children.append(Child(proc, parent))
        return self.children[-1]

    def stop(self, procs: list[subprocess.Popen[bytes]]) -> None:
        """SIGTERM (agents stop their projects, leave), SIGKILL after the process's timeout;
        then whatever is left of their trees (a project's or a command's process group)."""
        descendants: list[psutil.Process] = []
        for proc in procs:
            if proc.poll() is None:  # not reaped yet, so its pid is still its own
                with contextlib.suppress(psutil.Error):
                    descendants += psutil.Process(proc.pid).children(recursive=True)
                proc.terminate()
        for proc in procs:
            timeout = self.timeouts.get(proc.pid, 15.0)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"  pid {proc.pid} did not stop within {timeout:g} s; killing it", flush=True)
                proc.kill()
                proc.wait()
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()

    def stop_all(self) -> None:
        for child in self.children:
            child.end(wait=0.1)
        for proc in reversed(self.procs):  # agents leave through the manager: it goes last
            self.stop([proc])


def wait_for_line(proc: subprocess.Popen[bytes], log: Path, pattern: str, timeout: float) -> str:
    """Wait until the log has a match of `pattern`; its first group."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)  # polling a starting process's log, with a deadline
    raise RuntimeError(f"{proc.args!r} did not start; its output:\n{log.read_text()[-2000:]}")


def timed_runs(argv: list[str], runs: int, **options: Any) -> list[float]:
    """Wall seconds of `runs` whole runs of argv (`options` go to subprocess.run; output is
    captured); SystemExit when one fails."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, timeout=60, **options)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
    return times


@dataclass
class Manager:
    proc: subprocess.Popen[bytes]
    url: str
    token: str


def start_manager(procs: Processes, folder: Path, *extra: str) -> Manager:
    """`syncopate manager serve` on a free port of HOST, data in `folder/data`, output in
    `folder/manager.log`, `extra` arguments appended; its URL and controller token."""
    data_dir = folder / "data"
    folder.mkdir(parents=True, exist_ok=True)  # a second manager's data dir may be a copy
    command = [
        *(PY, "-m", "syncopate", "manager", "serve", "--host", HOST, "--port", "0"),
        *("--data-dir", str(data_dir), "--password", PASSWORD, *extra),
    ]
    proc = procs.start(command, folder / "manager.log")
    url = wait_for_line(proc, folder / "manager.log", LISTENING, 30)
    token = json.loads((data_dir / "controller.json").read_text())["token"]
    return Manager(proc, url.rstrip("/"), token)


def raise_open_file_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards `wanted` (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def run_main(
    prefix: str, body: Callable[[Path, Processes], Coroutine[Any, Any, None] | None]
) -> int:
    """Run `body(tmp, procs)` (awaited if a coroutine) in a temporary directory; end every
    process it started before the directory goes; 130 on Ctrl-C or SIGTERM."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress shows up in a log file too

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so cleanup runs as for Ctrl-C

    previous = signal.signal(signal.SIGTERM, interrupt)
    procs = Processes()
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            try:
                result = body(Path(tmp), procs)
                if result is not None:
                    asyncio.run(result)
            except KeyboardInterrupt:
                print("\ninterrupted; stopping the subprocesses", file=sys.stderr)
                return 130
            finally:
                procs.stop_all()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
