"""The hardware_synchronizer seed's device protocol on `GET|POST /hw_supervisor` (DESIGN §3, §7).

A real manager on loopback, driven the way the seed's small devices and its requesting side
do it: `status_query` as a GET with query parameters, everything else as a POST form. Every
answer must carry the seed's status fields; the device's state machine (0 rest, 1 requested,
2 collected, 3 responded) must match the command channel's commands as the controller API
shows them.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from syncopate.command_protocol import MAX_RESPONSE_CHARS
from syncopate.errors import Conflict
from syncopate.manager.auth import check_controller_token
from syncopate.manager.command_wire import epoch_seconds
from tests.helpers import PASSWORD, RunningManager, wait_for

STATUS_FIELDS = (
    "user",
    "state",
    "command",
    "hw_command",
    "hw_response",
    "server_analysis",
    "time",
    "time-iso",
    "login",
)
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CODE = "print(2+2)"
BLANK = {
    "state": None,
    "command": "",
    "hw_command": "",
    "hw_response": "",
    "server_analysis": "",
    "time": "",
    "time-iso": "",
    "login": False,
}


@dataclass
class Device:
    """A lite device's identity as /node-initialize gave it."""

    name: str
    token: str


@dataclass
class Seed:
    """Speaks /hw_supervisor as the seed's clients do: GET with a query, POST with a form."""

    session: aiohttp.ClientSession
    url: str

    async def call(self, method: str, expect: int, **params: str) -> dict[str, Any]:
        """One request; checks the HTTP status and that the answer has every status field."""
        route = self.url + "/hw_supervisor"
        if method == "GET":
            request = self.session.get(route, params=params)
        else:
            request = self.session.post(route, data=params)
        async with request as response:
            assert response.content_type == "application/json", await response.text()
            answer: dict[str, Any] = await response.json()
            status = response.status
        assert status == expect, (status, answer)
        missing = [
            f for f in (*STATUS_FIELDS, "request-status", "request-information") if f not in answer
        ]
        assert not missing, f"answer lacks {missing}: {answer}"
        if expect == 200:
            assert answer["request-status"] == "success", answer
        else:
            assert answer["request-status"] == "failure", answer
            assert answer["request-information"], f"a failure must give a reason: {answer}"
        return answer

    async def status(self, user: str, pword: str, expect: int = 200) -> dict[str, Any]:
        return await self.call("GET", expect, user=user, pword=pword, command="status_query")

    async def request(
        self, user: str, pword: str, code: str = CODE, expect: int = 200
    ) -> dict[str, Any]:
        return await self.call(
            "POST", expect, user=user, pword=pword, command="hw_command_request", hw_comm=code
        )

    async def retrieve(self, device: Device, expect: int = 200) -> dict[str, Any]:
        return await self.call(
            "POST", expect, user=device.name, pword=device.token, command="hw_command_retrieval"
        )

    async def respond(self, device: Device, response: str, expect: int = 200) -> dict[str, Any]:
        return await self.call(
            "POST",
            expect,
            user=device.name,
            pword=device.token,
            command="hw_response_provide",
            hw_resp=response,
        )

    async def analyze(
        self, user: str, pword: str, analysis: str, expect: int = 200
    ) -> dict[str, Any]:
        return await self.call(
            "POST",
            expect,
            user=user,
            pword=pword,
            command="server_analysis_provide",
            server_anal=analysis,
        )

    async def join(self, name: str, kind: str | None = None, **extra: str) -> Device:
        """Join with a form, as a small device would (storage and ram as strings)."""
        form = {
            "preferred-name": name,
            "syncopate-password": PASSWORD,
            "storage": "64",
            "ram": "32",
        }
        if kind is not None:
            form["kind"] = kind
        form.update(extra)
        async with self.session.post(self.url + "/node-initialize", data=form) as response:
            answer = await response.json()
            assert response.status == 200, answer
        assert answer["initialization-result"] == "success"
        return Device(answer["name"], answer["access-token"])


@pytest.fixture
async def seed(manager: RunningManager) -> AsyncIterator[Seed]:
    async with aiohttp.ClientSession() as session:
        yield Seed(session, manager.url)


def fields(answer: dict[str, Any]) -> dict[str, Any]:
    return {f: answer[f] for f in STATUS_FIELDS}


async def show(manager: RunningManager, command_id: int) -> dict[str, Any]:
    async with manager.client() as ctl:
        return await ctl.command_show(command_id)


async def commands_of(manager: RunningManager, node: str) -> dict[str, dict[str, Any]]:
    async with manager.client() as ctl:
        found: dict[str, dict[str, Any]] = (await ctl.command_list(node=node))["commands"]
        return found


# the full cycle ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [None, "lite"])
async def test_full_cycle_through_every_state_and_back_to_rest(
    manager: RunningManager, seed: Seed, kind: str | None
) -> None:
    """0 -> request -> 1 -> retrieval -> 2 -> response -> 3 -> analysis -> 0, each answer with
    every status field; the rest state keeps the last code, response and analysis; the command
    is an ordinary command whose history says who did each step and when."""
    device = await seed.join("pi", kind)
    admin = check_controller_token(manager.state.store, manager.token).name
    assert admin and admin != device.name

    rest = await seed.status(device.name, device.token)
    assert fields(rest) == {"user": device.name, **BLANK, "state": 0, "login": True}

    requested = await seed.request(device.name, manager.token)
    assert requested["state"] == 1
    assert requested["command"] == "hw_command_request"
    assert requested["hw_command"] == CODE
    assert (requested["hw_response"], requested["server_analysis"]) == ("", "")
    assert ISO_MS.match(requested["time-iso"]), requested
    # the seed's `time`: epoch seconds, the same instant as time-iso
    assert isinstance(requested["time"], float) and requested["login"] is True
    assert abs(requested["time"] - time.time()) < 60
    assert requested["time"] == epoch_seconds(requested["time-iso"])
    assert requested["user"] == device.name
    # the device sees the same through its own status_query
    assert fields(await seed.status(device.name, device.token)) == fields(requested)

    collected = await seed.retrieve(device)
    assert collected["state"] == 2
    assert collected["command"] == "hw_command_retrieval"
    assert collected["hw_command"] == CODE
    assert collected["time"] >= requested["time"]

    responded = await seed.respond(device, "4")
    assert responded["state"] == 3
    assert responded["command"] == "hw_response_provide"
    assert (responded["hw_command"], responded["hw_response"]) == (CODE, "4")
    # the requesting side sees the response
    assert fields(await seed.status(device.name, manager.token)) == fields(responded)

    analyzed = await seed.analyze(device.name, manager.token, "correct")
    assert analyzed["state"] == 0
    assert analyzed["command"] == "server_analysis_provide"
    assert (analyzed["hw_command"], analyzed["hw_response"], analyzed["server_analysis"]) == (
        CODE,
        "4",
        "correct",
    )
    assert ISO_MS.match(analyzed["time-iso"]) and analyzed["time"] >= responded["time"]
    assert fields(await seed.status(device.name, device.token)) == fields(analyzed)

    async with manager.client() as ctl:
        assert (await ctl.nodes())[device.name]["kind"] == "lite"
        listed = (await ctl.command_list(node=device.name))["commands"]
    assert len(listed) == 1
    command = await show(manager, int(next(iter(listed))))
    assert command["node"] == device.name
    assert command["user"] == admin
    assert command["state"] == "analyzed"
    assert command["lite"] is True
    assert (command["code"], command["response"], command["analysis"]) == (CODE, "4", "correct")
    assert command["interpreter"] == "python"
    steps = [(s["state"], s["by"]) for s in command["history"]]
    assert steps == [
        ("requested", admin),
        ("collected", device.name),
        ("responded", device.name),
        ("analyzed", admin),
    ]
    stamps = [s["at"] for s in command["history"]]
    assert all(ISO_MS.match(at) for at in stamps), stamps
    assert stamps == sorted(stamps)
    assert [command[k] for k in ("created", "collected", "responded", "analyzed")] == stamps
    assert command["ended"] == stamps[-1] == analyzed["time-iso"]

    # back at rest, a new request is accepted and replaces the fields
    again = await seed.request(device.name, manager.token, code="print('again')")
    assert (again["state"], again["hw_command"], again["hw_response"]) == (1, "print('again')", "")
    assert len(await commands_of(manager, device.name)) == 2


# wrong state, one at a time ---------------------------------------------------------------------
async def test_device_operations_at_rest_are_refused_and_change_nothing(
    manager: RunningManager, seed: Seed
) -> None:
    """Retrieval, response and analysis at rest get 409 with the device's state 0 and a
    reason; afterwards the device is still at rest and no command exists."""
    device = await seed.join("pi", "lite")
    before = fields(await seed.status(device.name, device.token))

    refused = await seed.retrieve(device, expect=409)
    assert refused["state"] == 0
    assert "rest" in refused["request-information"]
    assert fields(refused) == before
    refused = await seed.respond(device, "4", expect=409)
    assert fields(refused) == before
    refused = await seed.analyze(device.name, manager.token, "correct", expect=409)
    assert fields(refused) == before

    assert fields(await seed.status(device.name, device.token)) == before
    assert await commands_of(manager, device.name) == {}


async def test_wrong_state_operations_name_the_current_state(
    manager: RunningManager, seed: Seed
) -> None:
    """A response in state 1, a retrieval or analysis in state 2, a retrieval or response in
    state 3: each 409 with the current state in the answer and the command untouched."""
    device = await seed.join("pi", "lite")
    await seed.request(device.name, manager.token)
    state1 = await seed.respond(device, "early", expect=409)
    assert state1["state"] == 1 and "state 1" in state1["request-information"]
    assert state1["hw_response"] == ""

    await seed.retrieve(device)
    for refused in (
        await seed.retrieve(device, expect=409),
        await seed.analyze(device.name, manager.token, "early", expect=409),
    ):
        assert refused["state"] == 2 and "state 2" in refused["request-information"]
        assert refused["server_analysis"] == ""

    await seed.respond(device, "4")
    for refused in (
        await seed.retrieve(device, expect=409),
        await seed.respond(device, "5", expect=409),
    ):
        assert refused["state"] == 3 and "state 3" in refused["request-information"]
        assert refused["hw_response"] == "4"
    (command,) = (await commands_of(manager, device.name)).values()
    assert (command["state"], command["response"], command["analysis"]) == ("responded", "4", None)


async def test_second_request_while_one_is_outstanding_is_refused(
    manager: RunningManager, seed: Seed
) -> None:
    """One outstanding command per device: a second request in state 1, 2 or 3 gets 409 and
    the first command stays as it was; after the analysis a new one is accepted."""
    device = await seed.join("pi", "lite")
    first = await seed.request(device.name, manager.token)

    refused = await seed.request(device.name, manager.token, code="print('second')", expect=409)
    assert fields(refused) == fields(first)
    assert "outstanding" in refused["request-information"]

    await seed.retrieve(device)
    refused = await seed.request(device.name, manager.token, code="print('second')", expect=409)
    assert (refused["state"], refused["hw_command"]) == (2, CODE)

    responded = await seed.respond(device, "4")
    refused = await seed.request(device.name, manager.token, code="print('second')", expect=409)
    assert fields(refused) == fields(responded)

    # the controller API refuses a second command to the device too
    async with manager.client() as ctl:
        with pytest.raises(Conflict, match="outstanding"):
            await ctl.command_send([device.name], "print('third')")
    listed = await commands_of(manager, device.name)
    assert len(listed) == 1
    (command,) = listed.values()
    assert (command["state"], command["code"], command["response"]) == ("responded", CODE, "4")

    await seed.analyze(device.name, manager.token, "correct")
    accepted = await seed.request(device.name, manager.token, code="print('second')")
    assert (accepted["state"], accepted["hw_command"]) == (1, "print('second')")


# who may ask ------------------------------------------------------------------------------------
async def test_wrong_pword_is_401_and_shows_no_device_fields(
    manager: RunningManager, seed: Seed
) -> None:
    """A wrong pword (on either side, or another device's token) gets 401 with the status fields
    blank; an unknown device with a controller token gets 404; nothing changes."""
    # 16 wrong pwords on purpose from one address, past the credential throttle's limit (its
    # 429s are tested in test_guard.py): here only the 401s are looked at.
    manager.state.throttle.max_failures = 100
    device = await seed.join("pi", "lite")
    other = await seed.join("esp", "lite")
    await seed.request(device.name, manager.token, code="secret = 42")
    await seed.retrieve(device)
    before = fields(await seed.status(device.name, device.token))

    for pword in ("wrong", "", other.token, manager.token + "x", device.token[:-1]):
        for method, command in (
            ("GET", "status_query"),
            ("POST", "hw_response_provide"),
            ("POST", "server_analysis_provide"),
        ):
            answer = await seed.call(
                method,
                401,
                user=device.name,
                pword=pword,
                command=command,
                hw_resp="leak",
                server_anal="leak",
            )
            assert fields(answer) == {"user": device.name, **BLANK}, answer
            assert "secret" not in str(answer)
            assert "pword" in answer["request-information"]

    unknown = await seed.status("nobody", manager.token, expect=404)
    assert fields(unknown) == {"user": "nobody", **BLANK}
    assert "nobody" in unknown["request-information"]
    await seed.request("nobody", manager.token, expect=404)
    await seed.status("nobody", "wrong", expect=401)

    assert fields(await seed.status(device.name, device.token)) == before
    assert fields(await seed.status(other.name, other.token))["state"] == 0
    assert len(await commands_of(manager, device.name)) == 1


async def test_wrong_side_wrong_method_and_bad_parameters_change_nothing(
    manager: RunningManager, seed: Seed
) -> None:
    """A device sending the requesting side's commands and a controller sending the device's get
    403; a state-changing command sent with GET gets 405; a request without hw_comm, and a
    response or analysis without its value, get 400; an unknown or missing `command` gets 400.
    Every answer has the status fields and the device's state stays as it was."""
    device = await seed.join("pi", "lite")
    requested = await seed.request(device.name, manager.token)
    before = fields(requested)
    dev = {"user": device.name, "pword": device.token}
    ctl = {"user": device.name, "pword": manager.token}

    cases: list[tuple[str, int, dict[str, str]]] = [
        ("POST", 403, {**dev, "command": "hw_command_request", "hw_comm": "print(1)"}),
        ("POST", 403, {**dev, "command": "server_analysis_provide", "server_anal": "x"}),
        ("POST", 403, {**ctl, "command": "hw_command_retrieval"}),
        ("POST", 403, {**ctl, "command": "hw_response_provide", "hw_resp": "x"}),
        ("GET", 405, {**ctl, "command": "hw_command_request", "hw_comm": "print(1)"}),
        ("GET", 405, {**dev, "command": "hw_command_retrieval"}),
        ("GET", 405, {**dev, "command": "hw_response_provide", "hw_resp": "x"}),
        ("GET", 405, {**ctl, "command": "server_analysis_provide", "server_anal": "x"}),
    ]
    for method, expect, params in cases:
        answer = await seed.call(method, expect, **params)
        assert fields(answer) == before, (method, params, answer)
        assert params["command"] in answer["request-information"]

    # sent with POST, the device's retrieval is what turns state 1 into 2: GET did not do it
    assert fields(await seed.status(device.name, device.token)) == before

    # a missing value for the operation: 400 (after the state is right for it)
    await seed.analyze(device.name, manager.token, "x", expect=409)
    missing = await seed.call("POST", 400, **ctl, command="hw_command_request")
    assert "hw_comm" in missing["request-information"]
    assert fields(missing) == before

    for bad in ("bogus", "", "STATUS_QUERY", "status_query; drop table"):
        answer = await seed.call("POST", 400, **dev, command=bad)
        assert "command" in answer["request-information"]
    await seed.call("POST", 400, **dev)
    await seed.call("GET", 400, **dev, command="bogus")

    assert fields(await seed.status(device.name, device.token)) == before
    (command,) = (await commands_of(manager, device.name)).values()
    assert command["state"] == "requested"
    assert [s["state"] for s in command["history"]] == ["requested"]

    await seed.retrieve(device)
    missing = await seed.call("POST", 400, **dev, command="hw_response_provide")
    assert "hw_resp" in missing["request-information"] and missing["state"] == 2
    await seed.respond(device, "4")
    missing = await seed.call("POST", 400, **ctl, command="server_analysis_provide")
    assert "server_anal" in missing["request-information"] and missing["state"] == 3
    assert (await seed.status(device.name, device.token))["state"] == 3


async def test_invalid_parameters_with_valid_credentials_still_show_the_device_fields(
    manager: RunningManager, seed: Seed
) -> None:
    """Only a 401 hides the device's fields: a caller with the right pword whose `command` is
    unknown, or whose hw_resp is over the size limit, gets 400 with the device's status fields
    (as a 409, 403, 405 or a missing hw_comm does), and the state is unchanged."""
    device = await seed.join("pi", "lite")
    requested = fields(await seed.request(device.name, manager.token))
    for pword in (device.token, manager.token):
        answer = await seed.call("POST", 400, user=device.name, pword=pword, command="bogus")
        assert fields(answer) == requested, answer

    collected = fields(await seed.retrieve(device))
    oversized = "x" * (MAX_RESPONSE_CHARS + 1)
    answer = await seed.respond(device, oversized, expect=400)
    assert "hw_resp" in answer["request-information"]
    assert fields(answer) == collected, fields(answer)
    assert fields(await seed.status(device.name, device.token)) == collected


# the command channel's view ---------------------------------------------------------------------
async def test_device_command_is_visible_in_command_list_by_node_and_state(
    manager: RunningManager, seed: Seed
) -> None:
    """`command_list(node=device)` finds the device's commands only; `command_list(state=...)`
    follows it through requested, collected, responded and analyzed."""
    device = await seed.join("pi", "lite")
    other = await seed.join("esp", "lite")
    await seed.request(other.name, manager.token, code="print('other')")
    answer = await seed.request(device.name, manager.token)
    command_id = str(answer["id"])

    async with manager.client() as ctl:
        mine = (await ctl.command_list(node=device.name))["commands"]
        assert list(mine) == [command_id]
        assert mine[command_id]["code"] == CODE and mine[command_id]["node"] == device.name
        for state in ("requested", "collected", "responded", "analyzed"):
            if state == "collected":
                await seed.retrieve(device)
            elif state == "responded":
                await seed.respond(device, "4")
            elif state == "analyzed":
                await seed.analyze(device.name, manager.token, "correct")
            found = (await ctl.command_list(state=state))["commands"]
            assert command_id in found, (state, found)
            assert found[command_id]["state"] == state
            for other_state in ("requested", "collected", "responded", "analyzed"):
                if other_state != state:
                    assert command_id not in (await ctl.command_list(state=other_state))["commands"]
        both = (await ctl.command_list(node=device.name, state="analyzed"))["commands"]
        assert list(both) == [command_id]
        assert (await ctl.command_list(node=other.name, state="analyzed"))["commands"] == {}


# lite nodes and projects ------------------------------------------------------------------------
async def test_first_device_call_makes_the_node_lite_and_moves_its_projects_away(
    manager: RunningManager, seed: Seed
) -> None:
    """A node joined without `kind` holds a project (the only node); its first device-side
    /hw_supervisor call makes it lite and the project leaves it (no other node: not placed)."""
    device = await seed.join("pi")
    async with manager.client() as ctl:
        await ctl.add("blinker", "file:///tmp/x")
        placed = (await ctl.status(["blinker"]))["blinker"]
        assert placed["node"] == device.name
        node = (await ctl.nodes())[device.name]
        assert (node["kind"], node["projects"]) == ("agent", ["blinker"])

    await seed.status(device.name, device.token)

    async with manager.client() as ctl:
        node = (await ctl.nodes())[device.name]
        assert node["kind"] == "lite"
        assert node["projects"] == []
        moved = (await ctl.status(["blinker"]))["blinker"]
    assert moved["node"] is None
    # not placed anywhere (no other node): the manager says why, naming the lite device
    assert moved["status"] in ("unschedulable", "lost"), moved
    assert "lite" in moved["reason"], moved
    assert manager.db_rows("nodes")[device.name]["kind"] == "lite"


async def test_a_node_joined_as_lite_is_never_given_projects(
    manager: RunningManager, seed: Seed
) -> None:
    """`kind=lite` at join: the node table says lite at once and a project added while it is
    the only node is not placed on it."""
    device = await seed.join("pi", "lite")
    async with manager.client() as ctl:
        assert (await ctl.nodes())[device.name]["kind"] == "lite"
        await ctl.add("blinker", "file:///tmp/x")
        project = (await ctl.status(["blinker"]))["blinker"]
        assert project["node"] is None
        assert (await ctl.nodes())[device.name]["projects"] == []


async def test_a_node_running_the_agent_is_refused_as_a_device(
    manager: RunningManager, seed: Seed
) -> None:
    """A node that joined with `agent-version` (as the Syncopate agent does) gets 403 on the
    device side and stays an agent node with its project."""
    agent = await seed.join("agent", **{"agent-version": "1.0.0"})
    async with manager.client() as ctl:
        await ctl.add("blinker", "file:///tmp/x")
    for method, command in (
        ("GET", "status_query"),
        ("POST", "hw_command_retrieval"),
        ("POST", "hw_response_provide"),
    ):
        answer = await seed.call(
            method, 403, user=agent.name, pword=agent.token, command=command, hw_resp="4"
        )
        assert "agent" in answer["request-information"]
    async with manager.client() as ctl:
        node = (await ctl.nodes())[agent.name]
        assert node["kind"] == "agent"
        assert node["projects"] == ["blinker"]
        assert (await ctl.command_list(node=agent.name))["commands"] == {}


# deadlines and cancellation ---------------------------------------------------------------------
async def test_uncollected_command_times_out_and_the_device_returns_to_rest(
    manager: RunningManager, seed: Seed
) -> None:
    """A command the device does not collect before its pickup deadline becomes timed-out; the
    device is at rest again (state 0), a retrieval gets 409 and a new request is accepted."""
    device = await seed.join("pi", "lite")
    async with manager.client() as ctl:
        (sent,) = (await ctl.command_send([device.name], CODE, pickup=0.3)).values()
    assert sent["lite"] is True
    requested = await seed.status(device.name, device.token)
    assert (requested["state"], requested["hw_command"]) == (1, CODE)

    async def timed_out() -> dict[str, Any] | None:
        command = await show(manager, sent["id"])
        return command if command["state"] == "timed-out" else None

    command = await wait_for(timed_out, timeout=5.0, what="the command to time out")
    assert command["reason"] and command["ended"]
    assert command["history"][-1]["by"] == "manager"

    rest = await seed.status(device.name, device.token)
    assert rest["state"] == 0
    await seed.retrieve(device, expect=409)
    accepted = await seed.request(device.name, manager.token, code="print('retry')")
    assert (accepted["state"], accepted["hw_command"]) == (1, "print('retry')")
    collected = await seed.retrieve(device)
    assert (collected["state"], collected["hw_command"]) == (2, "print('retry')")


async def test_cancel_while_requested_puts_the_device_at_rest(
    manager: RunningManager, seed: Seed
) -> None:
    """A controller cancels the requested command: the device is at rest (state 0), its
    retrieval gets 409, the command is canceled (by the controller user); once collected a
    command can no longer be canceled."""
    device = await seed.join("pi", "lite")
    admin = check_controller_token(manager.state.store, manager.token).name
    requested = await seed.request(device.name, manager.token)

    async with manager.client() as ctl:
        canceled = await ctl.command_cancel(requested["id"])
    assert canceled["state"] == "canceled"
    assert canceled["history"][-1]["by"] == admin

    rest = await seed.status(device.name, device.token)
    assert rest["state"] == 0
    refused = await seed.retrieve(device, expect=409)
    assert refused["state"] == 0
    assert (await show(manager, requested["id"]))["state"] == "canceled"

    second = await seed.request(device.name, manager.token, code="print('second')")
    await seed.retrieve(device)
    async with manager.client() as ctl:
        with pytest.raises(Conflict, match="collected"):
            await ctl.command_cancel(second["id"])
    assert (await seed.status(device.name, device.token))["state"] == 2
