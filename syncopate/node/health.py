"""Health checks (DESIGN section 12): what a check is, running one, and counting failures.

    check = health.choose(local.health, toml_check)      # the manager's, else syncopate.toml's
    outcome = await health.run(check, cwd, env)            # Outcome(ok, detail)
    count = FailureCount()
    if count.record(outcome.ok, check.retries): ...        # `retries` failures in a row

A check is a shell command (exit 0 = well), run in the checkout with the project's
environment in a session of its own, so that a timeout ends it with everything it started; or an
HTTP GET (2xx = well). Given both, both must pass. The loop that runs checks while a project
runs is `watch.py`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncopate.http_client import HttpClient, HttpError
from syncopate.node import runcommand
from syncopate.node.groups import KILL_WAIT, signal_group

# What a reason quotes of a failing check's output: its last lines, at most this much.
OUTPUT_LINES = 5
OUTPUT_CHARS = 500
KEYS = ("cmd", "http", "interval", "timeout", "retries")


class HealthConfigError(ValueError):
    """A `[health]` section that cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class HealthCheck:
    """One project's health check. Durations in seconds."""

    cmd: str | None = None
    http: str | None = None
    interval: float = 10.0
    timeout: float = 5.0
    retries: int = 3


@dataclass(frozen=True)
class Outcome:
    """One check's result; `detail` says why it failed (output, HTTP status or error)."""

    ok: bool
    detail: str = ""


class FailureCount:
    """Failed checks in a row: a passing check resets the count."""

    def __init__(self) -> None:
        self.in_a_row = 0

    def record(self, ok: bool, retries: int) -> bool:
        """Count one check; True when this makes `retries` failures in a row (unhealthy)."""
        self.in_a_row = 0 if ok else self.in_a_row + 1
        return self.in_a_row >= retries


# the configuration ----------------------------------------------------------------------------
def from_manager(health: dict[str, Any] | None) -> HealthCheck | None:
    """The check the manager sent (`project add|set --health-*`), already validated there."""
    if not health or not (health.get("cmd") or health.get("http")):
        return None
    return HealthCheck(
        cmd=health.get("cmd") or None,
        http=health.get("http") or None,
        interval=float(health.get("interval") or 10.0),
        timeout=float(health.get("timeout") or 5.0),
        retries=int(health.get("retries") or 3),
    )


def parse_section(section: Any) -> HealthCheck | None:
    """The check a `[health]` table describes (None: no section); raise HealthConfigError."""
    if section is None:
        return None
    if not isinstance(section, dict):
        raise HealthConfigError("[health] must be a table")
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise HealthConfigError(f"[health] has unknown keys {', '.join(unknown)}")
    cmd, http = section.get("cmd"), section.get("http")
    if cmd is not None and (not isinstance(cmd, str) or not cmd.strip() or "\x00" in cmd):
        raise HealthConfigError("[health] cmd must be a non-empty shell command")
    if http is not None and not _is_http_url(http):
        raise HealthConfigError("[health] http must be an http:// or https:// URL")
    if not cmd and not http:
        raise HealthConfigError("[health] needs cmd or http")
    return HealthCheck(
        cmd=cmd,
        http=http,
        interval=_seconds(section, "interval", 10.0),
        timeout=_seconds(section, "timeout", 5.0),
        retries=_retries(section.get("retries", 3)),
    )


def from_checkout(checkout: Path) -> HealthCheck | None:
    """The `[health]` of the checkout's syncopate.toml (None: none); raise HealthConfigError."""
    try:
        config = runcommand.read_config(checkout)
    except runcommand.ConfigError as exc:
        raise HealthConfigError(str(exc)) from None
    return parse_section(config.get("health"))


def choose(manager: dict[str, Any] | None, toml_check: HealthCheck | None) -> HealthCheck | None:
    """The manager's check when it sent one, else the repository's."""
    return from_manager(manager) or toml_check


def _seconds(section: dict[str, Any], key: str, default: float) -> float:
    value = section.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not 0 < value <= 86400:
        raise HealthConfigError(f"[health] {key} must be a number of seconds, 0 < {key} <= 86400")
    return float(value)


def _retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise HealthConfigError("[health] retries must be a whole number from 1 to 100")
    return value


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# running a check ------------------------------------------------------------------------------
async def run(check: HealthCheck, cwd: Path, env: dict[str, str]) -> Outcome:
    """Run `check` once: its command, then its GET; the first failure is the outcome."""
    if check.cmd:
        outcome = await run_command(check.cmd, check.timeout, cwd, env)
        if not outcome.ok:
            return outcome
    if check.http:
        return await run_http(check.http, check.timeout)
    return Outcome(True)


async def run_command(cmd: str, timeout: float, cwd: Path, env: dict[str, str]) -> Outcome:
    """`/bin/sh -c cmd` in `cwd`; well when it exits 0 within `timeout`."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,  # its own group: a timeout ends what it started too
        )
    except OSError as exc:
        return Outcome(False, f"cannot run {cmd!r}: {exc}")
    try:
        # communicate() also waits for the pipe's end, so a child left in the background
        # holding it counts against the timeout too.
        async with asyncio.timeout(timeout):
            output, _ = await proc.communicate()
    except TimeoutError:
        signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(KILL_WAIT):
                await proc.wait()
        return Outcome(False, f"{cmd!r} timed out after {timeout:g}s")
    except BaseException:
        signal_group(proc.pid, signal.SIGKILL)  # the agent stops: leave nothing behind
        raise
    signal_group(proc.pid, signal.SIGKILL)  # anything it left in its group
    if proc.returncode == 0:
        return Outcome(True)
    text = last_output(output.decode("utf-8", errors="replace"))
    said = f": {text}" if text else " (no output)"
    return Outcome(False, f"{cmd!r} exited {_exit(proc.returncode)}{said}")


async def run_http(url: str, timeout: float) -> Outcome:
    """GET `url`; well on a 2xx answer within `timeout`."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    try:
        client = HttpClient(
            f"{parts.scheme}://{parts.netloc}",
            connect_timeout=timeout,
            user_agent="syncopate-health",
        )
    except ValueError as exc:
        return Outcome(False, f"GET {url}: {exc}")
    try:
        async with asyncio.timeout(timeout):
            response = await client.request("GET", path, timeout=timeout)
    except TimeoutError:
        return Outcome(False, f"GET {url}: no answer within {timeout:g}s")
    except (HttpError, OSError, ValueError) as exc:
        return Outcome(False, f"GET {url}: {exc or type(exc).__name__}")
    finally:
        await client.close()
    if 200 <= response.status < 300:
        return Outcome(True)
    body = last_output(response.text())
    return Outcome(False, f"GET {url}: HTTP {response.status}" + (f": {body}" if body else ""))


def last_output(text: str) -> str:
    """The last OUTPUT_LINES non-empty lines of `text`, joined with " | ", at most
    OUTPUT_CHARS characters (the end kept: the last words say most)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    joined = " | ".join(lines[-OUTPUT_LINES:])
    return joined if len(joined) <= OUTPUT_CHARS else "..." + joined[-(OUTPUT_CHARS - 3) :]


def _exit(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"with code {code}"
