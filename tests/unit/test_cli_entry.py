"""The `syncopate` entry point: errors are one line, usage errors exit 2, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def syncopate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncopate", *args], capture_output=True, text=True, timeout=60
    )


def test_version() -> None:
    done = syncopate("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("syncopate ")


def test_token_without_a_manager_is_one_line(tmp_path: Path) -> None:
    done = syncopate("manager", "token", "--data-dir", str(tmp_path / "none"))
    assert done.returncode == 1
    assert done.stderr.startswith("error: no ") and "start the manager first" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_usage_error_exits_2() -> None:
    done = syncopate("manager", "serve", "--port", "not-a-number")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "--port" in done.stderr


def test_tls_needs_both_files(tmp_path: Path) -> None:
    done = syncopate(
        "manager", "serve", "--port", "0", "--data-dir", str(tmp_path), "--tls-cert", "x.pem"
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: HTTPS needs both --tls-cert and --tls-key"


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = syncopate(
            "manager", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(tmp_path), "--password", "pw",
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "another --port" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
