"""Scoped controller tokens against one real manager process (DESIGN §15): what each role may
do over HTTP (/controller, /events, /hw_supervisor), `manager tokens`, a 403 on the CLI as one
line, and `manager revoke` (run by the CLI, another process) closing the token's open /events
stream at once, the next request refused."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncopate.client import ManagerClient
from syncopate.feed import EVENTS_REVOKED_CODE, FeedRevoked
from syncopate.protocol import ACTIONS
from syncopate.roles import ACTION_ROLES, ROLE_NAMES, Role
from tests.helpers import PASSWORD, SimNode, wait_for
from tests.procs import ManagerProcess, manager_process

GHOST: dict[str, Any] = {"projects": ["ghost"]}
# One request per action (and rollout with retry): an allowed one fails later, if at all (no
# such project, node or command), never with 403; a refused one is 403 before anything else.
REQUESTS: dict[str, dict[str, Any]] = {
    "add": {"project": {"name": "made", "url": "https://example.com/m.git", "start": False}},
    "set": {"project": {"name": "ghost", "command": "true"}},
    "set-variables": {**GHOST, "variables": {"a": 1}},
    "remove": {"project": {"name": "ghost", "url": "https://example.com/g.git"}},
    "start": GHOST,
    "stop": GHOST,
    "restart": GHOST,
    "reset": GHOST,
    "status": {},
    "nodes": {},
    "node-drain": {"node": "ghost"},
    "node-undrain": {"node": "ghost"},
    "node-forget": {"node": "ghost"},
    "node-label": {"node": "ghost", "labels": {"a": "b"}},
    "logs": GHOST,
    "rollout": GHOST,
    "command-send": {"nodes": ["ghost"], "code": "print(1)"},
    "command-list": {},
    "command-show": {"id": 999},
    "command-analyze": {"id": 999, "analysis": "fine"},
    "command-cancel": {"id": 999},
    "tokens": {},
    "token-make": {"name": "made-remotely", "role": "viewer"},
    "token-revoke": {"name": "ghost"},
}
CASES = [(action, fields, ACTION_ROLES[action]) for action, fields in REQUESTS.items()]


@dataclass
class Roles:
    manager: ManagerProcess
    url: str
    tokens: dict[str, str]  # role -> the token of `the-ROLE`, a person with that role

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = self.manager.environment() | {"SYNCOPATE_MANAGER": self.url}
        if token is not None:
            env["SYNCOPATE_TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-m", "syncopate", *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )

    def manager_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`syncopate manager ...` on the manager's data dir, as on its machine."""
        return self.cli("manager", *args, "--data-dir", str(self.manager.data_dir))

    def make_token(self, name: str, role: str) -> str:
        done = self.manager_cli("token", "--user", name, "--role", role)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Roles]:
    data_dir = tmp_path_factory.mktemp("roles") / "manager"
    with manager_process(data_dir, password=PASSWORD) as manager:
        url = manager.start()
        running = Roles(manager, url, {})
        running.tokens = {role: running.make_token(f"the-{role}", role) for role in ROLE_NAMES}
        yield running


async def closing(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """The close of an /events stream (changes may come first); fails after 10 s."""
    async with asyncio.timeout(10):
        while True:
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                return message


async def post(url: str, token: str, action: str, **fields: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + "/controller",
            json={"action": action, **fields},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        return response.status, await response.json()


async def test_each_role_may_do_what_its_role_allows_and_no_more(roles: Roles) -> None:
    cases = [*CASES, ("rollout", {**GHOST, "retry": True}, Role.OPERATOR)]
    assert {action for action, _, _ in cases} == set(ACTIONS)
    for action, fields, needed in cases:
        for role in ROLE_NAMES:
            status, answer = await post(roles.url, roles.tokens[role], action, **fields)
            what = f"action {action}" + (" with retry" if "retry" in fields else "")
            if Role(role).allows(needed):
                assert status not in (401, 403), (role, action, answer)
            else:
                assert status == 403, (role, action, answer)
                assert answer["error"] == (
                    f"{what} needs the {needed.value} role; the-{role}'s token is {role}"
                )


async def test_a_viewer_follows_events_and_reads_a_device_but_cannot_command_it(
    roles: Roles,
) -> None:
    viewer, operator = roles.tokens["viewer"], roles.tokens["operator"]
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(
            roles.url + "/events", headers={"Authorization": f"Bearer {viewer}"}
        ) as ws:
            assert json.loads((await ws.receive(timeout=10)).data)["type"] == "snapshot"
        form = {"preferred-name": "dev", "syncopate-password": PASSWORD, "kind": "lite"}
        async with session.post(roles.url + "/node-initialize", data=form) as response:
            device = (await response.json())["name"]

        async def hw(token: str, command: str, **extra: str) -> tuple[int, dict[str, Any]]:
            form = {"user": device, "pword": token, "command": command, **extra}
            async with session.post(roles.url + "/hw_supervisor", data=form) as response:
                return response.status, await response.json()

        assert (await hw(viewer, "status_query"))[0] == 200
        status, answer = await hw(viewer, "hw_command_request", hw_comm="print(1)")
        assert status == 403 and answer["user"] == device
        assert answer["error"] == (
            "hw_command_request needs the operator role; the-viewer's token is viewer"
        )
        status, answer = await hw(operator, "hw_command_request", hw_comm="print(1)")
        assert status == 200 and answer["state"] == 1, answer


def test_a_refusal_on_the_cli_is_one_line(roles: Roles) -> None:
    done = roles.cli("project", "stop", "--all", token=roles.tokens["viewer"])
    assert done.returncode == 1
    refusal = "action stop needs the operator role; the-viewer's token is viewer"
    assert done.stderr == f"error: {refusal}\n"


def test_manager_tokens_lists_names_roles_and_use_never_values(roles: Roles) -> None:
    roles.cli("project", "list", token=roles.tokens["viewer"])  # used now, if not before
    listed = roles.manager_cli("tokens", "--json")
    assert listed.returncode == 0, listed.stderr
    tokens = {t["name"]: t for t in json.loads(listed.stdout)}
    main = next(name for name, t in tokens.items() if t["main"])
    for role in ROLE_NAMES:
        assert tokens[f"the-{role}"]["role"] == role
    assert tokens[main]["role"] == "admin" and tokens["the-viewer"]["last-used"]
    table = roles.manager_cli("tokens")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "CREATED", "LAST", "USED"]
    assert lines[1].split()[:3] == [main, "(main)", "admin"]
    for secret in (*roles.tokens.values(), roles.manager.token):
        assert secret not in listed.stdout + table.stdout
    unknown = roles.manager_cli("revoke", "nobody")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: no controller token named 'nobody'; there are: ")
    refused = roles.manager_cli("revoke", main)
    assert refused.returncode == 1 and "token --rotate" in refused.stderr


async def test_revoke_closes_the_tokens_open_event_stream_and_refuses_it_next(
    roles: Roles,
) -> None:
    eve = roles.make_token("eve", "viewer")
    async with aiohttp.ClientSession() as session:
        streams = [
            await session.ws_connect(
                roles.url + "/events", headers={"Authorization": f"Bearer {token}"}
            )
            for token in (eve, roles.tokens["viewer"])
        ]
        for ws in streams:
            assert json.loads((await ws.receive(timeout=10)).data)["type"] == "snapshot"
        client = ManagerClient(roles.url, eve)  # the CLI's and the TUI's way of following
        followed = client.events()
        assert (await anext(followed))["type"] == "snapshot"
        done = roles.manager_cli("revoke", "eve")
        assert done.returncode == 0 and done.stdout == "revoked eve's token\n", done.stderr
        closed = await closing(streams[0])  # the manager checks every second
        assert closed.type == aiohttp.WSMsgType.CLOSE, closed
        assert closed.data == EVENTS_REVOKED_CODE
        assert closed.extra == "the controller token was revoked"
        assert not streams[1].closed  # another token's stream stays open
        with pytest.raises(FeedRevoked, match="the controller token was revoked"):
            async with asyncio.timeout(10):
                async for _ in followed:
                    pass
        await client.close()
        for ws in streams:
            await ws.close()
    status, answer = await post(roles.url, eve, "status")
    assert status == 401, answer


async def test_a_secret_a_program_prints_is_masked_in_what_a_viewer_reads(roles: Roles) -> None:
    """Answers show secrets as `***` already; a program may print its own, though, and its
    output reaches every role: the manager masks the values in output lines, the log tail and
    the reason before it keeps or sends them."""
    value = "tok-" + "5" * 20
    viewer = roles.tokens["viewer"]
    async with roles.manager.client() as admin:
        await admin.add("loud", "https://example.com/loud.git", secrets={"API_TOKEN": value})
    node = await SimNode.join(roles.url, "pi-loud")
    try:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(
                roles.url + "/events?logs=loud", headers={"Authorization": f"Bearer {viewer}"}
            )
            seen = [(await ws.receive(timeout=10)).data]

            async def placed() -> bool:
                return "loud" in await node.poll(wait=1)

            await wait_for(placed, what="loud to be placed on pi-loud")
            printed = f"connecting with {value}"
            await node.report(
                "loud",
                log_stream="s1",
                log_seq=0,
                log_lines=[printed],
                log_tail=[printed],
                reason=f"failed with {value}",
            )
            while '"type":"logs"' not in seen[-1]:
                seen.append((await ws.receive(timeout=10)).data)
            await ws.close()
        async with roles.manager.client(viewer) as ctl:
            answers = [await ctl.logs("loud"), await ctl.status(["loud"])]
    finally:
        await node.close()
    text = repr(seen) + repr(answers)
    assert "connecting with ***" in text and value not in text


async def test_rotating_the_main_token_closes_its_streams(roles: Roles, tmp_path: Path) -> None:
    """Last in the module: the main token changes (the fixture reads it from controller.json)."""
    old = roles.manager.token
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(
            roles.url + "/events", headers={"Authorization": f"Bearer {old}"}
        )
        assert json.loads((await ws.receive(timeout=10)).data)["type"] == "snapshot"
        done = roles.manager_cli("token", "--rotate")
        assert done.returncode == 0, done.stderr
        closed = await closing(ws)
        assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == EVENTS_REVOKED_CODE
        await ws.close()
    assert (await post(roles.url, old, "status"))[0] == 401
    assert (await post(roles.url, done.stdout.strip(), "status"))[0] == 200
