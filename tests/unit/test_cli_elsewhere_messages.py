"""The wording of what the CLI, the agent and the TUI say to a person on a secured fleet
(DESIGN §15): `manager serve`'s lines, a refused token, plain http:// to an https manager, the
token commands with no manager, the agent's kept pin and its unjoined data dir, the header."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from syncopate.agent_options import URL_HELP, command_line
from syncopate.cli.common import https_hint, refused_message
from syncopate.cli.manager_tokens import remote
from syncopate.cli.serve_lines import ready_lines
from syncopate.cli.target import Target
from syncopate.errors import ConfigError, HungUp, ProtocolError, Unauthorized, Unreachable
from syncopate.feed import FeedClosed, FeedDropped, FeedRevoked
from syncopate.manager.server import Listening
from syncopate.node import identity
from syncopate.paths import default_manager_dir
from syncopate.tui.model import FleetModel
from syncopate.tui.widgets.status_bar import bar_text, drop_text, token_refused

PIN = "sha256:" + "ab" * 32


def listening(url: str, join_url: str, pin: str | None, insecure: bool = False) -> Listening:
    return Listening(url, "pw-1", "generated, kept in /d/password", join_url, pin, insecure)


def test_serve_on_every_address_names_it_and_what_a_controller_elsewhere_sets() -> None:
    at = listening("https://127.0.0.1:8470", "https://192.168.1.10:8470", PIN)
    lines = ready_lines(at, "0.0.0.0", Path("/d"))
    assert lines[0] == (
        "Syncopate manager listening on https://127.0.0.1:8470  "
        "(this machine's URL; it listens on all addresses)"
    )
    assert (
        lines[1]
        == "network URL:   https://192.168.1.10:8470  (for nodes and controllers elsewhere)"
    )
    assert lines[-4:] == [
        "elsewhere:     a controller on another machine sets",
        "  SYNCOPATE_MANAGER=https://192.168.1.10:8470",
        f"  SYNCOPATE_FINGERPRINT={PIN}",
        "  SYNCOPATE_TOKEN=<`syncopate manager token --user NAME [--role admin] --data-dir /d`"
        " here>",
    ]
    assert all(len(line) <= 100 for line in lines[-4:])
    assert (
        "controller:    token in /d/controller.json (`syncopate manager token --data-dir /d`)"
        in (lines)
    )


def test_serve_with_the_default_data_dir_prints_commands_without_it() -> None:
    at = listening("https://127.0.0.1:8470", "https://192.168.1.10:8470", PIN)
    lines = ready_lines(at, "0.0.0.0", default_manager_dir().expanduser())
    assert "  SYNCOPATE_TOKEN=<`syncopate manager token --user NAME [--role admin]` here>" in lines
    assert not any("--data-dir" in line for line in lines)


def test_serve_on_loopback_says_nothing_for_elsewhere() -> None:
    at = listening("http://127.0.0.1:8470", "http://127.0.0.1:8470", None)
    lines = ready_lines(at, "127.0.0.1", Path("/d"))
    assert lines[0] == "Syncopate manager listening on http://127.0.0.1:8470"
    assert not any(line.startswith(("network URL:", "elsewhere:")) for line in lines)


def test_serve_insecure_on_an_address_has_no_fingerprint_to_set() -> None:
    at = listening("http://10.0.0.5:8470", "http://10.0.0.5:8470", None, insecure=True)
    lines = ready_lines(at, "10.0.0.5", Path("/d"))
    assert "  SYNCOPATE_MANAGER=http://10.0.0.5:8470" in lines
    assert "  SYNCOPATE_INSECURE=1  (else it sends no token over plain HTTP)" in lines
    assert not any("SYNCOPATE_FINGERPRINT" in line for line in lines)


@pytest.mark.parametrize("source", ["--token", "SYNCOPATE_TOKEN"])
def test_a_refused_token_given_by_hand_says_ask_the_admin(source: str) -> None:
    message = refused_message(Target("https://m:8470", "t", token_source=source))
    assert message == (
        f"the manager at https://m:8470 refused the controller token (from {source}): it was "
        "revoked, rotated or is wrong; ask the manager's admin for a token "
        "(`syncopate manager token --user NAME`)"
    )


def test_a_refused_token_from_this_machines_controller_json_points_at_manager_token() -> None:
    path = "/home/p/.local/share/syncopate/manager/controller.json"
    message = refused_message(Target("http://127.0.0.1:8470", "t", token_source=path))
    assert message.endswith(
        f"(from {path}); `syncopate manager token` on the manager's machine prints the current one"
    )


def test_plain_http_hung_up_or_answered_garbage_suggests_https() -> None:
    plain = Target("http://m:8470", "t")
    hint = "; if it serves HTTPS, use https://m:8470"
    assert https_hint(plain, HungUp("closed")) == hint
    assert https_hint(plain, ProtocolError("not HTTP")) == hint
    assert https_hint(plain, Unreachable("connection refused")) == ""  # nothing there at all
    assert https_hint(Target("https://m:8470", "t"), HungUp("closed")) == ""


def test_token_commands_with_no_database_and_no_manager_name_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNCOPATE_MANAGER", raising=False)
    with pytest.raises(ConfigError) as caught:
        remote(tmp_path, None, None, None, None)
    assert str(caught.value) == (
        f"no manager database in {tmp_path}: run this on the manager's machine (with --data-dir "
        "if it keeps its data elsewhere), or from here pass --manager URL and --token T, an "
        "admin's (or set SYNCOPATE_MANAGER and SYNCOPATE_TOKEN)"
    )
    (tmp_path / "syncopate.db").write_bytes(b"")
    assert remote(tmp_path, "https://m:8470", "t", None, None) is None  # here: the database
    (tmp_path / "syncopate.db").unlink()
    found = remote(tmp_path, "https://m:8470", "t", None, PIN)
    assert found is not None and (found.url, found.token, found.fingerprint) == (
        "https://m:8470",
        "t",
        PIN,
    )


def test_the_agent_options_show_https_and_leave_out_an_empty_name() -> None:
    assert URL_HELP == "The manager's URL, e.g. https://192.168.1.10:8470"
    assert "--name" not in command_line("https://m:8470", {})
    assert command_line("https://m:8470", {"name": "pi-7"})[1:3] == ["--name", "pi-7"]


def test_a_kept_pin_is_said_at_info(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    identity.save(tmp_path, identity.Identity("pi-1", "tok", "https://m:8470", PIN))
    with caplog.at_level(logging.INFO, logger="syncopate.node"):
        assert identity.pin_for(tmp_path, "https://m:8470", None) == PIN
    assert f"pinned {PIN} (kept in node.json)" in caplog.messages


def test_an_unjoined_data_dir_goes_and_a_joined_one_stays(tmp_path: Path) -> None:
    unjoined = tmp_path / "new"
    (unjoined / "projects").mkdir(parents=True)
    identity.remove_unjoined(unjoined)
    assert not unjoined.exists()
    joined = tmp_path / "joined"
    identity.save(joined, identity.Identity("pi-1", "tok", "https://m:8470", PIN))
    identity.remove_unjoined(joined)
    assert (joined / "node.json").exists()


def test_the_tui_header_on_a_revoked_token_and_when_stale() -> None:
    revoked = FeedDropped(FeedRevoked("closed: revoked"), 30)
    assert drop_text(revoked) == "token revoked — not retrying; start again with a valid token"
    refused = FeedDropped(Unauthorized("/events refused: HTTP 401"), 30)
    assert drop_text(refused) == (
        "token refused (revoked, rotated or wrong) — not retrying; start again with a valid one"
    )
    assert token_refused(revoked) and token_refused(refused)
    assert not token_refused(FeedDropped(FeedClosed("the event feed closed"), 2))
    lost = drop_text(FeedDropped(FeedClosed("the event feed closed"), 2))
    assert lost == "disconnected — retrying in 2s: the event feed closed"
    model = FleetModel()
    stale = bar_text(model, "https://m:8470", False, "token refused (revoked?)", stale=True).plain
    assert stale.startswith("○ token refused (revoked?)  last known: nodes 0/0 alive")
    assert "last known" not in bar_text(model, "https://m:8470", True, "connected").plain
