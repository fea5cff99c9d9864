"""The CLI of a controller on another machine, against one real HTTPS manager process (listening
on every address, as `manager serve --host 0.0.0.0` does): what `serve` prints is enough for
it; `manager token --user`, `tokens` and `revoke` work through the manager with an admin's
token; a revoked person's token, `logs --follow` closed as revoked, plain http:// to the https
manager, and a wrong join password each say what to do. "Another machine" is a CLI whose
SYNCOPATE_HOME holds no manager (no database, no controller.json)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import PASSWORD
from tests.procs import ManagerProcess, manager_process, wait_until

ELSEWHERE = re.compile(r"^  (SYNCOPATE_\w+)=(.*)$", re.MULTILINE)


@dataclass
class Elsewhere:
    manager: ManagerProcess
    home: Path  # the other machine's SYNCOPATE_HOME: no manager there
    printed: dict[str, str]  # what `serve` said a controller elsewhere sets

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
        return env | {"SYNCOPATE_HOME": str(self.home)} | extra

    def cli(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """`syncopate ARGS` on the other machine, with the environment `extra`."""
        return subprocess.run(
            [sys.executable, "-m", "syncopate", *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def as_admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        """With the printed variables and the main token (an admin's)."""
        return self.cli(*args, **self.with_token(self.manager.token))

    def with_token(self, token: str) -> dict[str, str]:
        return {**self.printed, "SYNCOPATE_TOKEN": token}


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Elsewhere]:
    tmp = tmp_path_factory.mktemp("elsewhere")
    with manager_process(
        tmp / "manager", password=PASSWORD, extra_args=["--host", "0.0.0.0"]
    ) as manager:
        manager.start()
        text = wait_until(
            lambda: manager.output if "SYNCOPATE_TOKEN=" in manager.output else None,
            "the lines for a controller elsewhere",
        )
        printed = dict(ELSEWHERE.findall(text))
        printed.pop("SYNCOPATE_TOKEN")  # a placeholder: the person's own token goes there
        yield Elsewhere(manager, tmp / "other-machine", printed)


def test_serve_says_where_it_listens_and_what_a_controller_elsewhere_sets(
    elsewhere: Elsewhere,
) -> None:
    text = elsewhere.manager.output
    recorded = elsewhere.manager.controller_json()
    assert "it listens on all addresses" in text
    assert f"network URL:   {recorded['join-url']}  (for nodes and controllers elsewhere)" in text
    assert elsewhere.printed == {
        "SYNCOPATE_MANAGER": recorded["join-url"],
        "SYNCOPATE_FINGERPRINT": recorded["fingerprint"],
    }
    # The manager's data dir is not the default: the command to run here says where it is.
    data_dir = elsewhere.manager.data_dir
    made_here = f"syncopate manager token --user NAME [--role admin] --data-dir {data_dir}"
    assert f"  SYNCOPATE_TOKEN=<`{made_here}` here>" in text
    assert f"(`syncopate manager token --data-dir {data_dir}`)" in text
    # The new lines fit 100 columns (a URL of a long IPv4 address, a pin), paths aside.
    for line in text.splitlines():
        if line.startswith(("network URL:", "elsewhere:", "  SYNCOPATE_")):
            assert len(line.replace(str(data_dir), "D")) <= 100, line
    # They are enough: a person's token and those two reach the manager from elsewhere.
    made = elsewhere.as_admin("manager", "token", "--user", "dana", "--role", "viewer")
    assert made.returncode == 0, made.stderr
    listed = elsewhere.cli("project", "list", **elsewhere.with_token(made.stdout.strip()))
    assert listed.returncode == 0, listed.stderr


def test_token_commands_work_from_elsewhere_through_the_manager(elsewhere: Elsewhere) -> None:
    made = elsewhere.as_admin("manager", "token", "--user", "carol", "--role", "viewer")
    assert made.returncode == 0, made.stderr
    carol = made.stdout.strip()
    listed = elsewhere.as_admin("manager", "tokens", "--json")
    assert listed.returncode == 0, listed.stderr
    roles = {t["name"]: t["role"] for t in json.loads(listed.stdout)}
    assert roles["carol"] == "viewer" and carol not in listed.stdout
    table = elsewhere.as_admin("manager", "tokens")
    assert table.returncode == 0 and "carol" in table.stdout, table.stderr
    # Only an admin may: carol's own token is refused, naming the role.
    refused = elsewhere.cli("manager", "tokens", **elsewhere.with_token(carol))
    assert refused.returncode == 1
    assert refused.stderr == "error: action tokens needs the admin role; carol's token is viewer\n"
    revoked = elsewhere.as_admin("manager", "revoke", "carol")
    assert revoked.returncode == 0 and revoked.stdout == "revoked carol's token\n", revoked.stderr
    # --json, as every controller command takes it.
    made_as_json = ("manager", "token", "--user", "fay", "--role", "operator", "--json")
    as_json = elsewhere.as_admin(*made_as_json)
    assert as_json.returncode == 0, as_json.stderr
    made_json = json.loads(as_json.stdout)
    assert (made_json["name"], made_json["role"]) == ("fay", "operator") and made_json["token"]
    gone = elsewhere.as_admin("manager", "revoke", "fay", "--json")
    assert json.loads(gone.stdout) == {"name": "fay", "result": "revoked fay's token"}
    # carol is told to ask the admin, not pointed at the main (admin's) token.
    after = elsewhere.cli("project", "list", **elsewhere.with_token(carol))
    assert after.returncode == 1
    assert (
        "it was revoked, rotated or is wrong; ask the manager's admin for a token" in after.stderr
    )
    assert "`syncopate manager token --user NAME`" in after.stderr
    assert "prints the current one" not in after.stderr


def test_token_commands_with_no_manager_say_both_ways(elsewhere: Elsewhere) -> None:
    for args in (("tokens",), ("revoke", "x"), ("token", "--user", "x")):
        done = elsewhere.cli("manager", *args)
        assert done.returncode == 1, done
        assert "no manager database in" in done.stderr
        assert "run this on the manager's machine" in done.stderr
        assert "pass --manager URL and --token T, an admin's" in done.stderr, done.stderr
    # join-command has no way from elsewhere: it says it is the manager's machine's.
    join = elsewhere.as_admin("manager", "join-command")
    assert join.returncode == 1
    assert "run this on the manager's machine" in join.stderr
    assert (
        "the join password is kept in a file there" in join.stderr
        and "--manager" not in join.stderr
    )


def test_logs_follow_ends_in_one_line_when_the_token_is_revoked(elsewhere: Elsewhere) -> None:
    done = elsewhere.as_admin("manager", "token", "--user", "erin", "--role", "viewer")
    erin = done.stdout.strip()
    added = elsewhere.as_admin("project", "add", "quiet", "https://example.com/q.git", "--no-start")
    assert added.returncode == 0, added.stderr
    follower = subprocess.Popen(
        [sys.executable, "-m", "syncopate", "logs", "quiet", "--follow"],
        env=elsewhere.env(**elsewhere.with_token(erin)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Following once the token's use is recorded (the feed is open); then revoke it.
        wait_until(lambda: _used(elsewhere, "erin"), "erin's feed to open")
        assert elsewhere.as_admin("manager", "revoke", "erin").returncode == 0
        _, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 1
    assert err == "error: the controller token was revoked\n"


def _used(elsewhere: Elsewhere, name: str) -> bool:
    listed = elsewhere.as_admin("manager", "tokens", "--json")
    return any(t["name"] == name and t["last-used"] for t in json.loads(listed.stdout))


def test_plain_http_beyond_loopback_sends_no_token_and_suggests_https(
    elsewhere: Elsewhere,
) -> None:
    """The token would cross the network in clear: refused before anything is sent (the
    manager's own count of wrong tokens, and its log, see nothing)."""
    https = elsewhere.printed["SYNCOPATE_MANAGER"]
    plain = "http://" + https.removeprefix("https://")
    done = elsewhere.cli("project", "list", "--manager", plain, "--token", elsewhere.manager.token)
    assert done.returncode == 1
    assert "refusing to send the controller token in clear" in done.stderr, done.stderr
    assert f"(use {https})" in done.stderr, done.stderr


def test_a_wrong_join_password_may_have_been_rotated_and_leaves_no_data_dir(
    elsewhere: Elsewhere, tmp_path: Path
) -> None:
    data_dir = tmp_path / "node"
    done = elsewhere.cli(
        "node",
        "join",
        elsewhere.printed["SYNCOPATE_MANAGER"],
        "--password",
        "not-the-password",
        "--fingerprint",
        elsewhere.printed["SYNCOPATE_FINGERPRINT"],
        "--data-dir",
        str(data_dir),
    )
    assert done.returncode == 1
    assert "wrong join password; ask the manager's owner for it (it may have been rotated: " in (
        done.stderr
    )
    assert "`syncopate manager join-command` on the manager's machine" in done.stderr
    assert not data_dir.exists(), list(data_dir.iterdir())
