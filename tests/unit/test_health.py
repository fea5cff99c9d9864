"""Health checks' pure parts (the [health] table, failure counting, output bounds) and one
check of each kind run for real: a shell command, a timeout that ends its group, an HTTP GET."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp import web

from syncopate.node import health
from syncopate.node.health import FailureCount, HealthCheck, HealthConfigError
from tests.helpers import wait_for


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (None, None),
        ({"cmd": "test -f ok"}, HealthCheck(cmd="test -f ok")),
        (
            {"http": "http://127.0.0.1:8080/health?x=1", "interval": 2, "timeout": 0.5},
            HealthCheck(http="http://127.0.0.1:8080/health?x=1", interval=2.0, timeout=0.5),
        ),
        (
            {"cmd": "true", "http": "https://pi/h", "retries": 1},
            HealthCheck(cmd="true", http="https://pi/h", retries=1),
        ),
    ],
)
def test_health_section_parses(section: Any, expected: HealthCheck | None) -> None:
    assert health.parse_section(section) == expected


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ("true", "must be a table"),
        ({}, "needs cmd or http"),
        ({"cmd": ""}, "non-empty shell command"),
        ({"cmd": 3}, "non-empty shell command"),
        ({"http": "ftp://pi/h"}, "http:// or https://"),
        ({"http": "http://pi/a b"}, "http:// or https://"),
        ({"cmd": "true", "intervall": 3}, "unknown keys intervall"),
        ({"cmd": "true", "interval": 0}, "interval must be a number of seconds"),
        ({"cmd": "true", "interval": "5"}, "interval must be a number of seconds"),
        ({"cmd": "true", "timeout": True}, "timeout must be a number of seconds"),
        ({"cmd": "true", "timeout": float("nan")}, "timeout must be a number of seconds"),
        ({"cmd": "true", "retries": 0}, "retries must be a whole number"),
        ({"cmd": "true", "retries": 2.5}, "retries must be a whole number"),
    ],
)
def test_bad_health_sections_are_refused_with_the_reason(section: Any, says: str) -> None:
    with pytest.raises(HealthConfigError, match=says):
        health.parse_section(section)


def test_the_managers_check_wins_over_the_repositorys(tmp_path: Path) -> None:
    (tmp_path / "syncopate.toml").write_text(
        '[run]\ncommand = "x"\n[health]\ncmd = "test -f ok"\ninterval = 0.5\n'
    )
    from_toml = health.from_checkout(tmp_path)
    assert from_toml == HealthCheck(cmd="test -f ok", interval=0.5)
    given = {"cmd": None, "http": "http://h/", "interval": 1.0, "timeout": 2.0, "retries": 4}
    assert health.choose(given, from_toml) == HealthCheck(
        http="http://h/", interval=1.0, timeout=2.0, retries=4
    )
    assert health.choose(None, from_toml) == from_toml
    assert health.choose({"cmd": None, "http": None}, None) is None
    assert health.from_checkout(tmp_path / "nowhere") is None
    (tmp_path / "syncopate.toml").write_text("[health\n")
    with pytest.raises(HealthConfigError, match="not valid TOML"):
        health.from_checkout(tmp_path)


@pytest.mark.parametrize(
    ("results", "retries", "unhealthy_at"),
    [
        ([False, False, False], 3, [False, False, True]),
        ([False, False, True, False, False, False], 3, [False] * 5 + [True]),  # a pass resets
        ([False], 1, [True]),
        ([True, True, False, True], 2, [False] * 4),
        ([False, False, False], 2, [False, True, True]),  # stays unhealthy until a pass
    ],
)
def test_failures_in_a_row(results: list[bool], retries: int, unhealthy_at: list[bool]) -> None:
    count = FailureCount()
    assert [count.record(ok, retries) for ok in results] == unhealthy_at


def test_output_is_bounded_to_the_last_lines() -> None:
    assert health.last_output("a\n\nb\n") == "a | b"
    text = "\n".join(f"line {n}" for n in range(20))
    assert health.last_output(text) == " | ".join(f"line {n}" for n in range(15, 20))
    long = health.last_output("x" * 5000)
    assert len(long) == health.OUTPUT_CHARS and long.startswith("...")


async def test_a_command_check_reports_its_exit_and_output(tmp_path: Path) -> None:
    env = {**os.environ, "WHO": "sensor"}
    ok = await health.run_command('test -n "$WHO"', 5.0, tmp_path, env)
    assert ok == health.Outcome(True)
    bad = await health.run_command('echo "$WHO is down" >&2; exit 4', 5.0, tmp_path, env)
    assert not bad.ok and "exited with code 4: sensor is down" in bad.detail


async def test_a_command_check_past_its_timeout_is_ended_with_its_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    command = f"sleep 100 & echo $! > {pid_file}; wait"
    outcome = await health.run_command(command, 0.3, tmp_path, dict(os.environ))
    assert not outcome.ok and "timed out after 0.3s" in outcome.detail
    child = int(pid_file.read_text())

    async def gone() -> bool:
        try:
            return bool(psutil.Process(child).status() == psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return True

    await wait_for(gone, timeout=5, what="the check's background child to be killed")


async def test_an_http_check_wants_a_2xx(unused_tcp_port: int) -> None:
    async def handle(request: web.Request) -> web.Response:
        if request.query.get("well") == "1":
            return web.Response(text="fine")
        return web.Response(status=503, text="database down\n")

    app = web.Application()
    app.router.add_get("/health", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    base = f"http://127.0.0.1:{unused_tcp_port}"
    try:
        assert (await health.run_http(f"{base}/health?well=1", 2.0)).ok
        bad = await health.run_http(f"{base}/health", 2.0)
        assert bad == health.Outcome(False, f"GET {base}/health: HTTP 503: database down")
    finally:
        await runner.cleanup()
    refused = await health.run_http(f"{base}/health", 2.0)
    assert not refused.ok and "connection refused" in refused.detail


def test_the_readmes_health_table_is_valid() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    check = health.parse_section(tomllib.loads(block)["health"])
    assert check == HealthCheck(http="http://127.0.0.1:8080/health", interval=10, timeout=5)
