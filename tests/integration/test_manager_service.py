"""`syncopate manager install-service` as a person runs it: the unit it writes or prints, the
options it carries, and a manager started from the unit's own ExecStart line."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_cli import one_error_line, run_cli
from tests.procs import ManagerProcess

pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without Syncopate settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    return env | extra


def exec_start(unit: str) -> list[str]:
    """The ExecStart line of `unit` as words (its quoting is the shell's for these units)."""
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


class UnitManager(ManagerProcess):
    """A manager started exactly as the unit's ExecStart says."""

    def __init__(self, argv: list[str], data_dir: Path) -> None:
        super().__init__(data_dir)
        self.argv = argv

    def command(self) -> list[str]:
        return self.argv


def test_a_user_unit_runs_the_manager_with_the_options_given(tmp_path: Path) -> None:
    env = clean_env(XDG_CONFIG_HOME=str(tmp_path / "config"))
    data_dir = tmp_path / "manager data"
    done = run_cli(
        "manager", "install-service", "--user", "--host", "127.0.0.1", "--port", "0",
        "--node-timeout", "7.5", "--no-balance", "--data-dir", str(data_dir), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    unit_path = tmp_path / "config" / "systemd" / "user" / "syncopate-manager.service"
    assert f"wrote {unit_path}" in done.stdout
    assert "systemctl --user daemon-reload && systemctl --user enable --now syncopate-manager" in (
        done.stdout
    )
    assert "journalctl --user -u syncopate-manager -f" in done.stdout
    unit = unit_path.read_text(encoding="utf-8")
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert line.startswith(f"ExecStart={sys.executable} -m syncopate manager serve ")
    assert f'--data-dir "{data_dir}"' in line  # quoted: the path has a space
    assert "--port 0" in line and "--node-timeout 7.5" in line and "--no-balance" in line
    assert "WantedBy=default.target" in unit and "Restart=always" in unit
    assert "User=" not in unit and "EnvironmentFile" not in unit  # no password file to read
    assert data_dir.is_dir()

    # The unit's own command line runs a manager on that data dir; its token is where
    # `syncopate manager token --data-dir` finds it.
    manager = UnitManager(exec_start(unit), data_dir)
    try:
        url = manager.start()
        assert url.startswith("http://127.0.0.1:")
        token = run_cli("manager", "token", "--data-dir", str(data_dir), env=env)
        assert token.returncode == 0 and token.stdout.strip(), token.stderr
        assert (data_dir / "syncopate.db").exists()
    finally:
        manager.stop()


def test_dry_run_prints_a_system_unit_and_writes_nothing(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not checked here", encoding="utf-8")
    key.write_text("not checked here", encoding="utf-8")
    done = run_cli(
        "manager", "install-service", "--dry-run", "--host", "0.0.0.0",
        "--unit-dir", str(tmp_path / "units"), "--data-dir", str(tmp_path / "data"),
        "--tls-cert", str(cert), "--tls-key", str(key), "--log-level", "debug", env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[Unit]\n") and "WantedBy=multi-user.target" in done.stdout
    assert "User=" in done.stdout  # a system unit never runs the manager as root by accident
    words = exec_start(done.stdout)
    assert words[words.index("--host") + 1] == "0.0.0.0"
    assert words[words.index("--port") + 1] == "8470"
    assert words[words.index("--node-timeout") + 1] == "15"
    assert words[words.index("--tls-cert") + 1] == str(cert)
    assert words[words.index("--tls-key") + 1] == str(key)
    assert words[words.index("--log-level") + 1] == "debug"
    assert "--no-balance" not in words
    assert not (tmp_path / "units").exists() and not (tmp_path / "data").exists()
    # --print is the node's spelling of the same thing
    printed = run_cli(
        "manager", "install-service", "--print", "--data-dir", str(tmp_path / "data"),
        "--tls-cert", str(cert), "--tls-key", str(key), "--host", "0.0.0.0",
        "--log-level", "debug", env=clean_env(),
    )  # fmt: skip
    assert printed.stdout == done.stdout


def test_tls_needs_both_files_and_they_must_exist(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x", encoding="utf-8")
    only_one = run_cli("manager", "install-service", "--dry-run", "--tls-cert", str(cert))
    assert one_error_line(only_one) == "error: HTTPS needs both --tls-cert and --tls-key"
    missing = run_cli(
        "manager", "install-service", "--dry-run", "--tls-cert", str(cert),
        "--tls-key", str(tmp_path / "nope.pem"),
    )  # fmt: skip
    assert one_error_line(missing) == f"error: no file {tmp_path / 'nope.pem'}"


def test_without_permission_says_what_to_do(tmp_path: Path) -> None:
    # As root (CI containers) /etc is writable, so point at a place nobody can write to.
    target = Path("/proc/syncopate-test") if os.geteuid() == 0 else Path("/etc/systemd/system")
    done = run_cli(
        "manager", "install-service", "--unit-dir", str(target),
        "--data-dir", str(tmp_path / "data"), env=clean_env(),
    )  # fmt: skip
    line = one_error_line(done)
    assert line.startswith("error: cannot write ")
    if os.geteuid() != 0:  # denied, not absent: the way out is sudo or a user unit
        assert "sudo" in line and "--user" in line


def test_the_node_command_takes_dry_run_too(tmp_path: Path) -> None:
    done = run_cli(
        "node", "install-service", "https://m:8470", "--password", "pw", "--dry-run",
        "--unit-dir", str(tmp_path / "units"), "--data-dir", str(tmp_path / "data"),
        env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[Unit]\n") and "syncopate.node" in done.stdout
    assert not (tmp_path / "units").exists()


def test_the_unit_is_valid_for_systemd_analyze(tmp_path: Path) -> None:
    analyze = "/usr/bin/systemd-analyze"
    if not Path(analyze).exists():
        pytest.skip("systemd-analyze is not installed here")
    done = run_cli(
        "manager", "install-service", "--user", "--unit-dir", str(tmp_path),
        "--data-dir", str(tmp_path / "data"), env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    checked = subprocess.run(
        [analyze, "verify", str(tmp_path / "syncopate-manager.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
