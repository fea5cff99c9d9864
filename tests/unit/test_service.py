"""The systemd unit both `install-service` commands write: where it goes and what it holds."""

from __future__ import annotations

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
