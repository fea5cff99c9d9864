"""Secure by default beyond loopback (DESIGN §15), with real managers, agents and the CLI.

- a manager with --tls on 127.0.0.1: /health over HTTPS with its pin, a node joined with the
  join string it printed runs a project, the CLI (the pin from controller.json) lists it, and
  `manager rotate-join` refuses the old secret at once while the joined node carries on;
- `node join` with a wrong pin, against a TLS server of the test's own that records every byte:
  it fails naming both fingerprints, and no request (no secret) ever reached the server;
- `--insecure` beyond loopback: plain HTTP, a warning, and /health says so;
- root only: a manager on a network namespace's address with no TLS flag serves HTTPS, and the
  join line it printed joins a node from outside the namespace.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from syncopate.client import ManagerClient
from syncopate.errors import Unauthorized
from syncopate.manager.tls import OwnCertificate
from syncopate.pins import parse_join_token
from tests.gitrepos import Repo
from tests.helpers import wait_for
from tests.netns import NetNamespace, NetnsUnavailable
from tests.procs import ManagerProcess, manager_process, wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
JOIN_LINE = re.compile(r"nodes join: +(syncopate node join (\S+) --token (SYN1-\S+))")


def cli_env(home: Path) -> dict[str, str]:
    """The CLI's environment: this machine's manager is the one whose data dir is home/manager."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    return env | {"SYNCOPATE_HOME": str(home)}


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "syncopate", *args]
    return subprocess.run(command, env=cli_env(home), capture_output=True, text=True, timeout=60)


def alive_nodes(home: Path) -> list[str]:
    """The names of the alive nodes, as `node list --json` shows them (none on a failure)."""
    done = cli(home, "node", "list", "--json")
    if done.returncode != 0:
        return []
    return [n["name"] for n in json.loads(done.stdout) if n["status"] == "alive"]


def printed_join(manager: ManagerProcess) -> re.Match[str]:
    found = wait_until(lambda: JOIN_LINE.search(manager.output), "the join line")
    return found


@asynccontextmanager
async def agents() -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """Agent processes, ended with SIGTERM at the end."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(proc.wait, 20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def join_argv(url: str, token: str, data_dir: Path, name: str) -> list[str]:
    return [
        sys.executable, "-m", "syncopate", "node", "join", url, "--token", token,
        "--name", name, "--data-dir", str(data_dir), "--interval", "0.3",
    ]  # fmt: skip


async def test_tls_manager_join_string_cli_and_rotate_join(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with manager_process(home / "manager", extra_args=["--tls"]) as manager:
        url = manager.start()
        assert url.startswith("https://127.0.0.1:")
        line, join_url, token = printed_join(manager).groups()
        assert join_url == url
        pin = parse_join_token(token).pin
        assert manager.controller_json()["fingerprint"] == pin
        assert manager.controller_json()["join-url"] == url
        # `manager join-command` prints the same line from the data dir.
        again = cli(home, "manager", "join-command", "--data-dir", str(home / "manager"))
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == line

        async with ManagerClient(url, fingerprint=pin) as client:
            health = await client.health()
        assert health["tls"] is True and "insecure" not in health

        repo = Repo.from_folder(ROOT / "examples" / "counter", tmp_path / "repos" / "counter")
        async with agents() as started:
            node_dir = tmp_path / "node"
            argv = join_argv(url, token, node_dir, "pi-1")
            started.append(subprocess.Popen(argv, env=cli_env(tmp_path / "agent-home")))
            listed = wait_until(
                lambda: alive_nodes(home),
                "the node to join (listed by the CLI over HTTPS with the pin)",
            )
            assert listed == ["pi-1"]
            # The agent keeps the pin next to its name and token, for its next start.
            kept = json.loads((node_dir / "node.json").read_text())
            assert kept["fingerprint"] == pin and kept["manager"] == url
            added = cli(home, "project", "add", "counter", repo.url, "--var", "count=0")
            assert added.returncode == 0, added.stderr

            async with manager.client(fingerprint=pin) as ctl:

                async def counting() -> int | None:
                    shown = (await ctl.status(["counter"]))["counter"]
                    count = shown["persistent-variables"].get("count", 0)
                    return count if shown["status"] == "running" and count > 0 else None

                await wait_for(counting, timeout=30, what="the counter to run and count")

                # A new join secret: the old refused at once, the new taken, pi-1 undisturbed.
                rotated = cli(home, "manager", "rotate-join", "--data-dir", str(home / "manager"))
                assert rotated.returncode == 0, rotated.stderr
                printed = re.search(r"--token (SYN1-\S+)", rotated.stdout)
                assert printed, rotated.stdout
                new, old = parse_join_token(printed.group(1)), parse_join_token(token)
                assert new.pin == pin and new.secret != old.secret
                async with ManagerClient(url, fingerprint=pin) as joining:
                    with pytest.raises(Unauthorized):
                        await joining.initialize(old.secret, "intruder")
                    name, _ = await joining.initialize(new.secret, "pi-2")
                    assert name == "pi-2"
                before = await counting()
                assert before is not None

                async def grew() -> bool:
                    now = await counting()
                    return now is not None and now > before

                await wait_for(grew, timeout=20, what="pi-1 to carry on counting")
                assert (await ctl.nodes())["pi-1"]["status"] == "alive"


async def test_a_wrong_pin_sends_nothing(tmp_path: Path) -> None:
    own = OwnCertificate(tmp_path / "tls", "127.0.0.1")
    context = own.context()
    received = bytearray()
    handlers: list[asyncio.Task[None]] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while data := await reader.read(65536):
                received.extend(data)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(record, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    wrong = "sha256:" + "0f" * 32
    secret = "the-join-secret-42"
    token = f"SYN1-{'0f' * 32}-{secret}"
    try:
        argv = join_argv(f"https://127.0.0.1:{port}", token, tmp_path / "node", "pi-x")
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=cli_env(tmp_path / "home"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode == 1, (out, err)
        message = err.decode()
        assert wrong in message and own.pin() in message, message
        assert "Traceback" not in message
        await wait_for(
            lambda: _all_done(handlers), timeout=10, what="the server's connections to end"
        )
    finally:
        server.close()
        await server.wait_closed()
    assert bytes(received) == b""  # not a byte of a request, let alone the secret
    assert secret.encode() not in received
    assert not (tmp_path / "node" / "node.json").exists()


async def _all_done(tasks: list[asyncio.Task[None]]) -> bool:
    return bool(tasks) and all(task.done() for task in tasks)


async def test_insecure_beyond_loopback_says_so(tmp_path: Path) -> None:
    extra = ["--host", "0.0.0.0", "--insecure"]
    with manager_process(tmp_path / "manager", extra_args=extra) as manager:
        url = manager.start()
        assert url.startswith("http://127.0.0.1:")
        wait_until(lambda: "nodes join:" in manager.output, "the join line")
        assert "plain HTTP beyond loopback (--insecure)" in manager.output
        assert re.search(
            r"nodes join: +syncopate node join http://\S+ --password \S+", manager.output
        )
        assert "fingerprint" not in manager.controller_json()
        async with ManagerClient(url) as client:
            health = await client.health()
        assert health["tls"] is False and health["insecure"] is True


async def test_beyond_loopback_without_flags_serves_https(tmp_path: Path) -> None:
    try:
        ns = NetNamespace.create()
    except NetnsUnavailable as exc:
        pytest.skip(f"needs root and ip netns: {exc}")
    home = tmp_path / "home"
    command = [sys.executable, "-m", "syncopate", "manager", "serve"]
    command += ["--host", ns.inner_address, "--port", "0", "--data-dir", str(home / "manager")]
    output = tmp_path / "manager.out"
    with ns, output.open("w") as sink:
        manager = subprocess.Popen(
            ns.wrap(command), env=cli_env(home), stdout=sink, stderr=subprocess.STDOUT
        )
        try:
            found = wait_until(lambda: JOIN_LINE.search(output.read_text()), "the join line")
            _, join_url, token = found.groups()
            assert join_url.startswith(f"https://{ns.inner_address}:"), output.read_text()
            async with agents() as started:
                argv = join_argv(join_url, token, tmp_path / "node", "outside")
                started.append(subprocess.Popen(argv, env=cli_env(tmp_path / "agent-home")))
                listed = wait_until(
                    lambda: alive_nodes(home), "the node outside the namespace to join"
                )
                assert listed == ["outside"]
                async with ManagerClient(join_url, fingerprint=parse_join_token(token).pin) as c:
                    assert (await c.health())["tls"] is True
        finally:
            manager.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(manager.wait, 20)
            except subprocess.TimeoutExpired:
                manager.kill()
                manager.wait()
