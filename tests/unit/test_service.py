"""The systemd unit both `install-service` commands write: where it goes and what it holds."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from syncopate.cli import service
from syncopate.errors import ConfigError


@pytest.mark.parametrize("role", ["node", "manager"])
def test_each_role_has_its_own_unit_and_data_dir(role: str, tmp_path: Path) -> None:
    plan = service.plan(role, user=True, data_dir=None, unit_dir=tmp_path)
    assert plan.unit_path == tmp_path / f"syncopate-{role}.service"
    assert plan.service == f"syncopate-{role}"
    assert plan.data_dir.name == role
    assert f"enable --now syncopate-{role}" in service.next_steps(plan)


def test_only_the_node_has_a_password_file(tmp_path: Path) -> None:
    node = service.plan("node", user=True, data_dir=tmp_path / "n", unit_dir=tmp_path)
    manager = service.plan("manager", user=True, data_dir=tmp_path / "m", unit_dir=tmp_path)
    assert node.env_path == tmp_path / "n" / "join.env"
    assert manager.env_path is None
    assert "EnvironmentFile=-" in service.unit_text(["x"], node, "node")
    assert "EnvironmentFile" not in service.unit_text(["x"], manager, "manager")


def test_install_without_a_password_file_writes_the_unit_and_data_dir(tmp_path: Path) -> None:
    plan = service.plan("manager", user=True, data_dir=tmp_path / "data", unit_dir=tmp_path)
    service.install(plan, "[Unit]\n")
    assert plan.unit_path.read_text(encoding="utf-8") == "[Unit]\n"
    assert plan.data_dir.is_dir() and list(plan.data_dir.iterdir()) == []


def test_unknown_role_and_line_breaks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        service.plan("tui", user=True, data_dir=None, unit_dir=tmp_path)
    plan = service.plan("manager", user=True, data_dir=tmp_path, unit_dir=tmp_path)
    with pytest.raises(ConfigError):
        service.unit_text(["x"], plan, "two\nlines")
    assert "Description=100%% busy" in service.unit_text(["x"], plan, "100% busy")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root writes units for another account")
def test_as_root_every_folder_it_makes_belongs_to_the_account_it_runs_as(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nobody = pwd.getpwnam("nobody")
    monkeypatch.setenv("SUDO_USER", "nobody")
    data_dir = tmp_path / "home" / ".local" / "syncopate" / "node"
    plan = service.plan("node", user=False, data_dir=data_dir, unit_dir=tmp_path / "units")
    assert plan.run_as == "nobody"
    service.install(plan, "[Unit]\n", "pw")
    for path in (data_dir, data_dir.parent, data_dir.parent.parent, plan.env_path):
        assert path is not None and path.stat().st_uid == nobody.pw_uid, path
    assert (tmp_path / "home").stat().st_uid == nobody.pw_uid  # made here too
    assert tmp_path.stat().st_uid == 0 and plan.unit_path.stat().st_uid == 0


def test_the_manager_unit_takes_every_option_of_serve_but_the_password() -> None:
    import typer.main

    from syncopate.cli.manager import app

    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]

    def options(name: str) -> dict[str, object]:
        return {p.name: p.default for p in commands[name].params}

    serve, unit = options("serve"), options("install-service")
    del serve["password"]
    assert {name: unit[name] for name in serve} == serve  # the same options, the same defaults
    assert set(unit) - set(serve) == {"user", "unit_dir", "print_only"}
