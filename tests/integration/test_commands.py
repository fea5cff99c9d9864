"""The command channel for real: a real manager, real agents, real programs on this machine."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from syncopate.client import ManagerClient
from syncopate.errors import Conflict, InvalidRequest, NotFound
from syncopate.manager.server import user_token
from syncopate.roles import Role
from tests.helpers import PASSWORD, running_manager, wait_for
from tests.integration.test_agent import Fleet

MARGIN = 0.5  # the manager's grace beyond a command's run timeout, kept short for the tests


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    async with running_manager(
        tmp_path / "manager", node_timeout=3.0, command_margin=MARGIN
    ) as manager:
        running = Fleet(manager, tmp_path)
        try:
            yield running
        finally:
            for name in list(running.agents):
                await running.stop_agent(name)


async def answered(ctl: ManagerClient, command_id: int, timeout: float = 15) -> dict[str, Any]:
    """The command once it has left requested/collected."""

    async def check() -> dict[str, Any] | None:
        info = await ctl.command_show(command_id)
        return info if info["state"] not in ("requested", "collected") else None

    return await wait_for(check, timeout=timeout, what=f"command {command_id} to be answered")


async def send_one(ctl: ManagerClient, node: str, code: str, **options: Any) -> int:
    sent = await ctl.command_send([node], code, **options)
    assert len(sent) == 1
    return int(next(iter(sent)))


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_a_program_output_and_exit_code_come_back(fleet: Fleet) -> None:
    """Python on `python3 -`: stdout and stderr, the exit code, cwd in a scratch directory."""
    await fleet.start_agent("pi-1")
    code = "import os, sys\nprint('out', os.getcwd())\nprint('err', file=sys.stderr)\nsys.exit(3)"
    async with fleet.manager.client() as ctl:
        command_id = await send_one(ctl, "pi-1", code)
        info = await answered(ctl, command_id)
    assert info["state"] == "responded"
    assert info["exit-code"] == 3
    scratch = fleet.tmp / "nodes" / "pi-1" / "commands" / str(command_id)
    assert f"out {scratch}" in info["response"]
    assert "err\n" in info["response"]
    assert info["duration"] > 0
    assert info["node"] == "pi-1" and info["interpreter"] == "python"
    assert not scratch.exists(), "the scratch directory is removed afterwards"


async def test_sh_programs_run_with_sh(fleet: Fleet) -> None:
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        command_id = await send_one(ctl, "pi-1", "echo $((6 * 7)); exit 5", interpreter="sh")
        info = await answered(ctl, command_id)
    assert (info["response"], info["exit-code"]) == ("42\n", 5)


async def test_timeout_ends_the_program_and_leaves_no_process(fleet: Fleet) -> None:
    """At its timeout the whole process group ends; the response is TIMEOUT, exit 124."""
    await fleet.start_agent("pi-1")
    marker = f"syncopate-test-{uuid.uuid4().hex}"
    code = f"sleep 300 & sleep 301 & echo {marker} > /dev/null; wait"
    async with fleet.manager.client() as ctl:
        command_id = await send_one(ctl, "pi-1", code, interpreter="sh", timeout=1.0)

        async def sleeping() -> list[psutil.Process]:
            return [p for p in psutil.process_iter(["cmdline"]) if _is_ours(p, marker)]

        found = await wait_for(sleeping, what="the command's processes to start")
        assert found, "the program ran"
        info = await answered(ctl, command_id)
    assert (info["state"], info["response"], info["exit-code"]) == ("responded", "TIMEOUT", 124)

    async def none_left() -> bool:
        return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in found)

    await wait_for(none_left, what="no process of the command to remain")


def _is_ours(process: psutil.Process, marker: str) -> bool:
    try:
        if process.info["cmdline"] and marker in " ".join(process.info["cmdline"]):
            return True
        # The sleeps: children of the sh that carries the marker.
        parent = process.parent()
        return parent is not None and marker in " ".join(parent.cmdline())
    except psutil.Error:
        return False


async def test_every_step_is_logged_with_who_and_when(fleet: Fleet) -> None:
    """requested -> collected -> responded -> analyzed, each stamped, in order, with who."""
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        command_id = await send_one(ctl, "pi-1", "print('ok')")
        await answered(ctl, command_id)
        info = await ctl.command_analyze(command_id, "fine")
    user = info["user"]
    assert user, "the name behind the controller token"
    steps = [(s["state"], s["by"]) for s in info["history"]]
    assert steps == [
        ("requested", user),
        ("collected", "pi-1"),
        ("responded", "pi-1"),
        ("analyzed", user),
    ]
    times = [stamp(info[k]) for k in ("created", "collected", "responded", "analyzed", "ended")]
    assert times == sorted(times)
    assert [s["at"] for s in info["history"]] == [
        info[k] for k in ("created", "collected", "responded", "analyzed")
    ]
    assert info["analysis"] == "fine" and info["state"] == "analyzed"


async def test_analyze_once_refused_twice(fleet: Fleet) -> None:
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        command_id = await send_one(ctl, "pi-1", "print(1)")
        await answered(ctl, command_id)
        await ctl.command_analyze(command_id, "first")
        with pytest.raises(Conflict) as refused:
            await ctl.command_analyze(command_id, "second")
        assert refused.value.details["state"] == "analyzed"
        assert "analyzed" in str(refused.value)
        info = await ctl.command_show(command_id)
    assert info["analysis"] == "first"
    assert [s["state"] for s in info["history"]].count("analyzed") == 1


async def test_analyze_before_the_response_is_refused(fleet: Fleet) -> None:
    """A requested command (its node is not running) cannot be analyzed: 409, state kept."""
    await fleet.start_agent("pi-1")
    await fleet.stop_agent("pi-1")
    async with fleet.manager.client() as ctl:
        command_id = await send_one(ctl, "pi-1", "print(1)")
        with pytest.raises(Conflict) as refused:
            await ctl.command_analyze(command_id, "too early")
        assert refused.value.details["state"] == "requested"
        info = await ctl.command_show(command_id)
    assert info["state"] == "requested" and info["analysis"] is None


async def test_cancel_before_collection(fleet: Fleet) -> None:
    """Canceled while its node is away; the node never runs it when it comes back."""
    await fleet.start_agent("pi-1")
    await fleet.stop_agent("pi-1")
    flag = fleet.tmp / "ran"
    async with fleet.manager.client() as ctl:
        command_id = await send_one(ctl, "pi-1", f"open({str(flag)!r}, 'w').write('x')")
        info = await ctl.command_cancel(command_id)
        assert info["state"] == "canceled" and info["ended"]
        with pytest.raises(Conflict):
            await ctl.command_cancel(command_id)
        # The node comes back; a later command runs, the canceled one never does.
        await fleet.start_agent("pi-1")
        later = await send_one(ctl, "pi-1", "print('later')")
        assert (await answered(ctl, later))["response"] == "later\n"
        assert (await ctl.command_show(command_id))["state"] == "canceled"
    assert not flag.exists()


async def test_cancel_after_collection_is_refused(fleet: Fleet) -> None:
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        command_id = await send_one(ctl, "pi-1", "import time; time.sleep(30)", timeout=2)

        async def collected() -> bool:
            return bool((await ctl.command_show(command_id))["state"] == "collected")

        await wait_for(collected, what="the command to be collected")
        with pytest.raises(Conflict) as refused:
            await ctl.command_cancel(command_id)
        assert refused.value.details["state"] == "collected"


async def test_pickup_deadline_for_an_offline_node(fleet: Fleet) -> None:
    """Nobody collects it: it times out at its pickup deadline, with the reason; never stuck."""
    await fleet.start_agent("pi-1")
    await fleet.stop_agent("pi-1")
    async with fleet.manager.client() as ctl:
        command_id = await send_one(ctl, "pi-1", "print(1)", pickup=0.3)
        info = await answered(ctl, command_id)
    assert info["state"] == "timed-out"
    assert "not collected within 0.3s" in info["reason"]
    assert info["collected"] is None and info["ended"]


async def test_metrics_count_waiting_commands(fleet: Fleet) -> None:
    await fleet.start_agent("pi-1")
    await fleet.stop_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await send_one(ctl, "pi-1", "print(1)")
        await send_one(ctl, "pi-1", "print(2)")
        text = await ctl.metrics()
    assert 'syncopate_commands_waiting{state="requested"} 2\n' in text
    assert 'syncopate_commands_waiting{state="collected"} 0\n' in text


async def test_collected_but_never_answered_times_out(fleet: Fleet) -> None:
    """A node that collects and goes silent: timed-out after the run timeout plus the margin."""
    async with ManagerClient(fleet.manager.url) as node:
        name, token = await node.initialize(PASSWORD, "mute", agent_version="test")
        async with fleet.manager.client() as ctl:
            command_id = await send_one(ctl, name, "print(1)", timeout=0.5)
            answer = await node.node_status(name, token)
            assert [c["id"] for c in answer["commands"]] == [command_id]
            again = await node.node_status(name, token)
            assert again["commands"] == [], "each command is handed out once"
            info = await answered(ctl, command_id)
            assert info["state"] == "timed-out"
            assert "no response within its 0.5s timeout" in info["reason"]
            # A late response is refused and changes nothing.
            with pytest.raises(Conflict):
                await node.node_command_result(name, token, command_id, "late", 0, 0.1)
            assert (await ctl.command_show(command_id))["response"] is None


async def test_responses_only_from_the_node_and_only_once(fleet: Fleet) -> None:
    async with ManagerClient(fleet.manager.url) as node:
        name, token = await node.initialize(PASSWORD, "sim", agent_version="test")
        other, other_token = await node.initialize(PASSWORD, "other", agent_version="test")
        async with fleet.manager.client() as ctl:
            command_id = await send_one(ctl, name, "print(1)")
            await node.node_status(name, token)
            with pytest.raises(NotFound):
                await node.node_command_result(other, other_token, command_id, "x", 0, 0.1)
            await node.node_command_result(name, token, command_id, "1\n", 0, 0.01)
            with pytest.raises(Conflict):
                await node.node_command_result(name, token, command_id, "again", 1, 0.01)
            info = await ctl.command_show(command_id)
    assert (info["response"], info["exit-code"]) == ("1\n", 0)


async def test_a_seed_node_is_not_handed_commands(fleet: Fleet) -> None:
    """A node without the agent (the seed's client) would drop them: they wait, then time out."""
    async with ManagerClient(fleet.manager.url) as node:
        name, token = await node.initialize(PASSWORD, "seedy")
        async with fleet.manager.client() as ctl:
            command_id = await send_one(ctl, name, "print(1)", pickup=0.3)
            answer = await node.node_status(name, token)
            assert "commands" not in answer
            assert (await answered(ctl, command_id))["state"] == "timed-out"


async def test_fan_out_to_every_live_node(fleet: Fleet) -> None:
    for name in ("pi-1", "pi-2", "pi-3"):
        await fleet.start_agent(name)
    await fleet.stop_agent("pi-3")  # not live: not sent to
    async with fleet.manager.client() as ctl:
        sent = await ctl.command_send(
            code="basename $(dirname $(dirname $PWD))",
            all_nodes=True,
            interpreter="sh",
        )
        assert sorted(c["node"] for c in sent.values()) == ["pi-1", "pi-2"]
        infos = [await answered(ctl, int(key)) for key in sent]
    assert sorted(i["response"].split()[-1] for i in infos) == ["pi-1", "pi-2"]
    assert all(i["exit-code"] == 0 for i in infos)


async def test_fan_out_to_named_nodes_and_unknown_names(fleet: Fleet) -> None:
    for name in ("pi-1", "pi-2"):
        await fleet.start_agent(name)
    async with fleet.manager.client() as ctl:
        sent = await ctl.command_send(["pi-1", "pi-2"], "print('hi')")
        assert len(sent) == 2
        for key in sent:
            assert (await answered(ctl, int(key)))["response"] == "hi\n"
        with pytest.raises(NotFound, match=r"no node named 'pi-9' — did you mean 'pi-\d'"):
            await ctl.command_send(["pi-1", "pi-9"], "print('hi')")
        listed = await ctl.command_list()
    assert len(listed["commands"]) == 2, "a refused send stores nothing"


async def test_a_program_does_not_block_the_projects_or_other_commands(fleet: Fleet) -> None:
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        slow = await send_one(ctl, "pi-1", "import time; time.sleep(20)", timeout=20)
        quick = await send_one(ctl, "pi-1", "print('quick')")
        assert (await answered(ctl, quick, timeout=10))["response"] == "quick\n"
        assert (await ctl.command_show(slow))["state"] == "collected"


async def test_list_filters_and_pages_newest_first(fleet: Fleet) -> None:
    await fleet.start_agent("pi-1")
    await fleet.start_agent("pi-2")
    async with fleet.manager.client() as ctl:
        ids = []
        for node in ("pi-1", "pi-2", "pi-1", "pi-2", "pi-1"):
            ids.append(await send_one(ctl, node, "print(1)"))
        for command_id in ids:
            await answered(ctl, command_id)
        everything = await ctl.command_list()
        assert [int(k) for k in everything["commands"]] == ids[::-1]
        assert everything["more"] is False
        on_pi1 = await ctl.command_list(node="pi-1")
        assert [int(k) for k in on_pi1["commands"]] == [ids[4], ids[2], ids[0]]
        page = await ctl.command_list(limit=2)
        assert [int(k) for k in page["commands"]] == [ids[4], ids[3]]
        assert page["more"] is True and page["next-before"] == ids[3]
        rest = await ctl.command_list(limit=2, before=page["next-before"])
        assert [int(k) for k in rest["commands"]] == [ids[2], ids[1]]
        assert (await ctl.command_list(state="responded"))["commands"].keys() == {
            str(i) for i in ids
        }
        assert (await ctl.command_list(state="canceled"))["commands"] == {}
        with pytest.raises(InvalidRequest, match="not a command state"):
            await ctl.command_list(state="done")


async def test_events_announce_command_changes(fleet: Fleet) -> None:
    """Each change reaches /events with the command's record as it is then (batched)."""
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        feed = ctl.events()
        snapshot = await anext(feed)
        assert snapshot["commands"] == {}
        command_id = await send_one(ctl, "pi-1", "print(1)")
        async for message in feed:
            info = (message.get("commands") or {}).get(str(command_id))
            if info and info["state"] == "responded":
                break
        await feed.aclose()
    assert info is not None, "the feed never carried the command"
    assert [s["state"] for s in info["history"]] == ["requested", "collected", "responded"]
    assert info["response"] == "1\n"


async def test_events_snapshot_holds_open_commands(fleet: Fleet) -> None:
    await fleet.start_agent("pi-1")
    await fleet.stop_agent("pi-1")
    async with fleet.manager.client() as ctl:
        command_id = await send_one(ctl, "pi-1", "print(1)")
        feed = ctl.events()
        snapshot = await anext(feed)
        await ctl.command_cancel(command_id)
        async for change in feed:
            if str(command_id) in change.get("commands", {}):
                break
        await feed.aclose()
    assert snapshot["commands"][str(command_id)]["state"] == "requested"
    assert change["commands"][str(command_id)]["state"] == "canceled"


async def test_the_user_is_the_name_behind_the_token(fleet: Fleet) -> None:
    """A person's own token (`manager token --user`) puts their name on what they send."""
    token = user_token(fleet.manager.state.store, "alice")
    assert fleet.manager.state.store.tokens.role_of("alice") is Role.OPERATOR
    await fleet.start_agent("pi-1")
    async with ManagerClient(fleet.manager.url, token) as alice:
        command_id = await send_one(alice, "pi-1", "print(1)")
        await answered(alice, command_id)
        info = await alice.command_analyze(command_id, "ok")
        mine = await alice.command_list(user="alice")
    assert info["user"] == "alice" and info["history"][-1]["by"] == "alice"
    assert list(mine["commands"]) == [str(command_id)]
    async with fleet.manager.client() as admin:
        assert (await admin.command_list(user="nobody"))["commands"] == {}


async def test_an_agent_stopping_mid_command_says_so(fleet: Fleet) -> None:
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        command_id = await send_one(ctl, "pi-1", "import time; time.sleep(60)", timeout=60)

        async def collected() -> bool:
            return bool((await ctl.command_show(command_id))["state"] == "collected")

        await wait_for(collected, what="the command to be collected")
        await fleet.stop_agent("pi-1")
        info = await answered(ctl, command_id)
    assert info["state"] == "responded"
    assert "agent stopped" in info["response"] and info["exit-code"] is None


async def test_open_commands_survive_a_manager_restart(tmp_path: Path) -> None:
    """Stored before the answer: a restarted manager still has it, and hands it out."""
    data = tmp_path / "manager"
    async with running_manager(data, node_timeout=3.0) as manager:
        async with ManagerClient(manager.url) as node:
            name, token = await node.initialize(PASSWORD, "sim", agent_version="test")
        async with manager.client() as ctl:
            command_id = await send_one(ctl, name, "print(1)")
    async with running_manager(data, node_timeout=3.0) as manager:
        async with ManagerClient(manager.url) as node:
            answer = await node.node_status(name, token)
        assert [c["id"] for c in answer["commands"]] == [command_id]
        async with manager.client() as ctl:
            later = await send_one(ctl, name, "print(2)")
    assert later == command_id + 1, "ids are never reused"
