"""The DESIGN section 12 fields of a project on a real manager: add, show, set, survive a
restart, and bad values refused with the reason and nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syncopate.errors import InvalidRequest
from tests.helpers import RunningManager, running_manager

URL = "file:///srv/git/sensor.git"
FIELDS: dict[str, Any] = {
    "on": ["zone=lab", "gpu", "arch!=armv6l"],
    "stay": True,
    "health-cmd": "test -f ready",
    "health-http": None,
    "health-interval": 2.5,
    "health-timeout": 1.0,
    "health-retries": 4,
    "grace": 30.0,
    "max-ram": 64.0,
}


async def _show(manager: RunningManager, name: str) -> dict[str, Any]:
    async with manager.client() as ctl:
        return dict((await ctl.status([name]))[name])


SHOWN = ("on", "every-node", "stay", "health", "grace", "max-ram")


def _section_12(info: dict[str, Any]) -> dict[str, Any]:
    return {key: info.get(key) for key in SHOWN}


async def test_add_stores_and_shows_the_fields(manager: RunningManager) -> None:
    async with manager.client() as ctl:
        await ctl.add("sensor", URL, start=False, **FIELDS)
    info = await _show(manager, "sensor")
    assert _section_12(info) == {
        "on": ["zone=lab", "gpu", "arch!=armv6l"],
        "every-node": False,
        "stay": True,
        "health": {
            "cmd": "test -f ready",
            "http": None,
            "interval": 2.5,
            "timeout": 1.0,
            "retries": 4,
        },
        "grace": 30.0,
        "max-ram": 64.0,
    }


async def test_defaults_when_not_given(manager: RunningManager) -> None:
    async with manager.client() as ctl:
        await ctl.add("plain", URL, start=False)
    assert _section_12(await _show(manager, "plain")) == {
        "on": [],
        "every-node": False,
        "stay": False,
        "health": None,
        "grace": 60.0,
        "max-ram": 0.0,
    }


async def test_set_changes_them_and_empty_values_remove(manager: RunningManager) -> None:
    async with manager.client() as ctl:
        await ctl.add("sensor", URL, start=False, **FIELDS)
        answer = await ctl.set_project(
            "sensor", on=["zone=attic"], grace=5, **{"max-ram": 0, "health-cmd": ""}
        )
    assert sorted(answer["changed"]) == ["constraints", "grace", "health_cmd", "max_ram"]
    info = await _show(manager, "sensor")
    assert info["on"] == ["zone=attic"]
    assert info["grace"] == 5.0 and info["max-ram"] == 0.0
    assert info["health"] is None  # no command and no URL left: no check
    async with manager.client() as ctl:
        await ctl.set_project("sensor", on=[])
    assert (await _show(manager, "sensor"))["on"] == []


async def test_the_fields_survive_a_manager_restart(tmp_path: Path) -> None:
    data = tmp_path / "manager"
    async with running_manager(data) as first, first.client() as ctl:
        await ctl.add("sensor", URL, start=False, **FIELDS)
        before = _section_12(await _show(first, "sensor"))
    async with running_manager(data, keep_token=True) as second:
        assert _section_12(await _show(second, "sensor")) == before


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"on": ["=lab"]}, "constraint '=lab'"),
        ({"on": ["zone=a b"]}, "zone"),
        ({"on": ["../../etc"]}, "label key"),
        ({"health-http": "ftp://pi/health"}, "health-http must be an http"),
        ({"health-interval": 0}, "health-interval"),
        ({"health-retries": True}, "whole number"),
        ({"grace": -1}, "grace"),
        ({"max-ram": -5}, "max-ram"),
        ({"health-cmd": "true\x00rm"}, "NUL"),
    ],
)
async def test_bad_values_are_refused_with_the_reason(
    manager: RunningManager, fields: dict[str, Any], says: str
) -> None:
    async with manager.client() as ctl:
        with pytest.raises(InvalidRequest) as refused:
            await ctl.add("sensor", URL, start=False, **fields)
        assert says in refused.value.message
        assert "sensor" not in await ctl.status()
        await ctl.add("kept", URL, start=False, on=["zone=lab"])
        with pytest.raises(InvalidRequest) as refused:
            await ctl.set_project("kept", **fields)
        assert says in refused.value.message
    assert (await _show(manager, "kept"))["on"] == ["zone=lab"]


async def test_every_node_cannot_change_in_place(manager: RunningManager) -> None:
    async with manager.client() as ctl:
        await ctl.add("sensor", URL, start=False)
        with pytest.raises(InvalidRequest) as refused:
            await ctl.set_project("sensor", **{"every-node": True})
    assert "every-node cannot change in place" in refused.value.message
    assert (await _show(manager, "sensor"))["every-node"] is False
