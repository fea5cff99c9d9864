"""Secrets for real (DESIGN section 11): a manager, an agent, a git repo, a process.

A secret reaches the process's environment and nothing else: every answer, the event feed,
/metrics, the log and the database files are searched for its value.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from syncopate.errors import ConfigError, InvalidRequest
from syncopate.manager.records import ProjectRecord
from syncopate.manager.secret_box import KEY_FILE
from syncopate.manager.store import Store
from tests.helpers import RunningManager, SimNode, wait_for
from tests.integration.test_agent import Fleet
from tests.integration.test_cli import one_error_line, run_cli
from tests.integration.test_project_set import PY, counter_repo, environ, starts


def secret_value() -> str:
    return f"s3cret-{uuid.uuid4().hex}"


def counting(p: dict[str, Any]) -> bool:
    return bool(p["status"] == "running" and p["persistent-variables"].get("count", 0) > 5)


async def test_a_secret_reaches_the_process_and_no_answer_event_log_or_file(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token, later = secret_value(), secret_value()
    repo = counter_repo(fleet.tmp)
    await fleet.start_agent("pi-1")
    seen: list[Any] = []
    async with fleet.manager.client() as ctl:
        feed = ctl.events(logs=["counter"])
        seen.append(await anext(feed))  # the snapshot
        await ctl.add(
            "counter",
            repo.url,
            command=f"{PY} counter.py",
            env={"GREETING": "hi"},
            secrets={"API_TOKEN": token},
        )
        info = await fleet.until("counter", counting, "counter to run and count")
        assert environ(info["pid"])["API_TOKEN"] == token
        assert environ(info["pid"])["GREETING"] == "hi"
        assert info["secrets"] == {"API_TOKEN": "***"} and info["env"] == {"GREETING": "hi"}
        changed = await ctl.set_project("counter", secrets={"LATER": later})
        assert changed["changed"] == ["secrets"]
        seen.append(changed)

        def restarted(p: dict[str, Any], old: int = info["pid"]) -> bool:
            return bool(p["status"] == "running" and p["pid"] != old)

        after = await fleet.until("counter", restarted, "the restart with the new secret")
        assert environ(after["pid"])["LATER"] == later
        assert after["secrets"] == {"API_TOKEN": "***", "LATER": "***"}
        # The feed carried the changes up to the new process.
        async for message in feed:
            seen.append(message)
            project = (message.get("projects") or {}).get("counter") or {}
            if project.get("pid") == after["pid"]:
                break
        await feed.aclose()
        seen += [
            await ctl.status(),
            await ctl.nodes(),
            await ctl.logs("counter"),
            await ctl.metrics(),
            (await ctl.get("/health")).body,
        ]
    text = repr(seen) + caplog.text
    assert "API_TOKEN" in text and "***" in text
    for value in (token, later):
        assert value not in text
        for path in fleet.manager.data_dir.glob("syncopate.db*"):
            assert value.encode() not in path.read_bytes(), path
    # The CLI's `show` and `list` render the same answers; their text holds no value either.
    env = {**os.environ, "SYNCOPATE_MANAGER": fleet.manager.url}
    env["SYNCOPATE_TOKEN"] = fleet.manager.token
    for args in (("project", "show", "counter"), ("project", "list"), ("node", "list")):
        # In a thread: the manager answering it runs in this test's event loop.
        done = await asyncio.to_thread(run_cli, *args, env=env)
        assert done.returncode == 0, done.stderr
        assert token not in done.stdout + done.stderr and later not in done.stdout


async def test_set_and_unset_secret_restart_once_each_keeping_variables(fleet: Fleet) -> None:
    repo = counter_repo(fleet.tmp)
    await fleet.start_agent("pi-1")
    value = secret_value()
    async with fleet.manager.client() as ctl:
        await ctl.add("counter", repo.url, command=f"{PY} counter.py", env={"GREETING": "hi"})
        steps: list[tuple[dict[str, Any], bool]] = [
            ({"secrets": {"KEY": value}}, True),
            ({"unset-secrets": ["KEY"]}, False),
        ]
        for earlier, (change, has) in enumerate(steps, start=1):
            before = await fleet.until("counter", counting, "counter to run and count")

            async def all_started(n: int = earlier) -> bool:
                return len(await starts(fleet)) == n

            await wait_for(all_started, what="the running process's start line")
            answer = await ctl.set_project("counter", **change)
            assert answer["changed"] == ["secrets"]

            def new_process(p: dict[str, Any], old: int = before["pid"]) -> bool:
                return bool(p["status"] == "running" and p["pid"] != old)

            after = await fleet.until("counter", new_process, f"a restart after {change}")
            assert ("KEY" in environ(after["pid"])) is has
            assert environ(after["pid"])["GREETING"] == "hi"

            async def new_start(earlier: int = earlier) -> list[Any] | None:
                seen = await starts(fleet)
                return seen[-1] if len(seen) > earlier else None

            start = await wait_for(new_start, what="the new process's start line")
            # It counts on from where the old one was: nothing lost.
            assert start[3] >= before["persistent-variables"]["count"]
        # Once at the start and once per change; the history names the field, not its value.
        assert len(await starts(fleet)) == 3
        final = await fleet.project("counter")
        assert final["secrets"] == {} and final["env"] == {"GREETING": "hi"}
        assert [h["fields"] for h in final["history"]] == [["secrets"], ["secrets"]]
        # A name that is env may not become a secret too; nothing changes.
        with pytest.raises(InvalidRequest, match=r"GREETING.*not both"):
            await ctl.set_project("counter", secrets={"GREETING": "x"})
        assert (await fleet.project("counter"))["restart"] == final["restart"]


def test_the_key_file_is_private_and_the_database_alone_reveals_nothing(tmp_path: Path) -> None:
    value = secret_value()
    store = Store(tmp_path)
    store.save_project(ProjectRecord("p", "https://example.com/p.git", secrets={"K": value}))
    store.close()
    key = tmp_path / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    for path in tmp_path.glob("syncopate.db*"):
        assert value.encode() not in path.read_bytes()
    # The same key opens them again.
    store = Store(tmp_path)
    assert store.load_projects()[0].secrets == {"K": value}
    store.close()
    # Without the key, or with another, the manager says which file, at start.
    saved = key.read_bytes()
    key.unlink()
    with pytest.raises(ConfigError, match=f"{KEY_FILE} is missing"):
        Store(tmp_path)
    assert not key.exists()  # no new key that could not open the old secrets
    key.write_bytes(b"not a key\n")
    with pytest.raises(ConfigError, match=f"{KEY_FILE} is not a secrets key"):
        Store(tmp_path)
    other = tmp_path / "other"
    Store(other).close()
    key.write_bytes((other / KEY_FILE).read_bytes())
    with pytest.raises(ConfigError, match=f"{KEY_FILE} is not the key"):
        Store(tmp_path)
    key.write_bytes(saved)
    Store(tmp_path).close()


def test_manager_serve_with_a_missing_key_says_so_without_a_traceback(tmp_path: Path) -> None:
    Store(tmp_path).close()
    (tmp_path / KEY_FILE).unlink()
    done = run_cli("manager", "serve", "--data-dir", str(tmp_path), "--port", "0")
    line = one_error_line(done)
    assert str(tmp_path / KEY_FILE) in line and "missing" in line


async def test_a_password_in_the_git_url_is_masked_everywhere_but_its_node(
    manager: RunningManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = secret_value()
    url = f"https://deploy:{password}@git.example.com/team/app.git"
    masked = "https://deploy:***@git.example.com/team/app.git"
    pi1 = await SimNode.join(manager.url, "pi-1")
    seen: list[Any] = []
    try:
        async with manager.client() as ctl:
            feed = ctl.events(logs=["app"])
            seen.append(await anext(feed))
            seen.append(await ctl.add("app", url, {"count": 0}))
            # Its node is told the URL as it is: it has to fetch it.
            assert (await pi1.poll())["app"]["project-url"] == url
            # A git error quoting the URL, as a node may send it, keeps no password either.
            quoted = f"fatal: unable to access '{url}': 403"
            output: dict[str, Any] = {"log-stream": "s", "log-seq": 0, "log-lines": [quoted]}
            await pi1.report("app", "failed", {"count": 1}, reason=quoted, **output)
            async for message in feed:
                seen.append(message)
                if message.get("type") == "logs":
                    break
            await feed.aclose()
            info = (await ctl.status(["app"]))["app"]
            assert info["project-url"] == masked
            assert info["reason"] == f"fatal: unable to access '{masked}': 403"
            seen += [info, await ctl.nodes(), await ctl.logs("app"), await ctl.metrics()]
            assert masked in repr(seen)
            assert password not in repr(seen) + caplog.text
            for path in manager.data_dir.glob("syncopate.db*"):
                assert password.encode() not in path.read_bytes(), path
            # Loaded again from the store, it is the whole URL; the masked form confirms remove.
            projects = {p.name: p for p in manager.state.store.load_projects()}
            assert projects["app"].url == url
            await ctl.remove("app", masked)
            assert "app" not in await ctl.status()
    finally:
        await pi1.close()
