"""Which manager a controller command talks to (DESIGN §8): flags, environment, controller.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncopate.cli.target import find_target
from syncopate.errors import ConfigError

LOCAL = {"url": "http://127.0.0.1:8470", "token": "local-token"}


@pytest.fixture
def controller_file(tmp_path: Path) -> Path:
    path = tmp_path / "controller.json"
    path.write_text(json.dumps(LOCAL), encoding="utf-8")
    return path


def test_flags_come_first(controller_file: Path) -> None:
    env = {"SYNCOPATE_MANAGER": "http://127.0.0.3:1", "SYNCOPATE_TOKEN": "env-token"}
    target = find_target(
        "http://localhost:2/", "flag-token", env=env, controller_file=controller_file
    )
    assert (target.url, target.token) == ("http://localhost:2", "flag-token")
    assert (target.source, target.token_source) == ("--manager", "--token")


def test_environment_comes_next(controller_file: Path) -> None:
    env = {"SYNCOPATE_MANAGER": "http://127.0.0.3:1", "SYNCOPATE_TOKEN": "env-token"}
    target = find_target(env=env, controller_file=controller_file)
    assert (target.url, target.token) == ("http://127.0.0.3:1", "env-token")
    assert (target.source, target.token_source) == ("SYNCOPATE_MANAGER", "SYNCOPATE_TOKEN")


def test_the_local_managers_controller_json_last(controller_file: Path) -> None:
    target = find_target(env={}, controller_file=controller_file)
    assert (target.url, target.token) == (LOCAL["url"], LOCAL["token"])
    assert target.source == target.token_source == str(controller_file)


def test_a_token_flag_overrides_the_local_token(controller_file: Path) -> None:
    target = find_target(token="other", env={}, controller_file=controller_file)
    assert (target.url, target.token, target.token_source) == (LOCAL["url"], "other", "--token")


def test_a_url_naming_the_local_manager_borrows_its_token(controller_file: Path) -> None:
    target = find_target("http://127.0.0.1:8470/", env={}, controller_file=controller_file)
    assert target.token == "local-token"
    with pytest.raises(ConfigError, match="no controller token for http://elsewhere:1"):
        find_target("http://elsewhere:1", env={}, controller_file=controller_file)


def test_tls_options_from_flags_environment_or_controller_json(tmp_path: Path) -> None:
    path = tmp_path / "controller.json"
    path.write_text(json.dumps({**LOCAL, "fingerprint": "sha256:aa"}), encoding="utf-8")
    assert find_target(env={}, controller_file=path).fingerprint == "sha256:aa"
    env = {"SYNCOPATE_CA_FILE": "/ca.pem", "SYNCOPATE_FINGERPRINT": "sha256:bb"}
    target = find_target(env=env, controller_file=path)
    assert (target.ca_file, target.fingerprint) == ("/ca.pem", "sha256:bb")
    target = find_target(fingerprint="sha256:cc", env=env, controller_file=path)
    assert target.fingerprint == "sha256:cc"


def test_nothing_to_go_on_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        find_target(env={}, controller_file=tmp_path / "missing.json")
    message = str(caught.value)
    assert "--manager" in message and "SYNCOPATE_MANAGER" in message
    assert str(tmp_path / "missing.json") in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "cannot read"),
        ('{"url": "http://x"}', "has no url and token"),
        ("[]", "has no url and token"),
    ],
)
def test_a_broken_controller_json_is_named(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "controller.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=reason):
        find_target(env={}, controller_file=path)


@pytest.mark.parametrize("url", ["http://192.0.2.7:8470", "http://pi-manager.lan:8470"])
def test_no_token_goes_in_clear_beyond_loopback(url: str, controller_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"refusing to send the controller token in clear") as e:
        find_target(url, "a-token", env={}, controller_file=controller_file)
    assert f"use https://{url.removeprefix('http://')}" in str(e.value)
    # A manager started with --insecure: the user says so.
    target = find_target(url, "a-token", env={"SYNCOPATE_INSECURE": "1"}, controller_file=None)
    assert target.url == url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8470", "http://[::1]:8470", "http://localhost:1"]
)
def test_loopback_stays_plain(url: str, controller_file: Path) -> None:
    assert find_target(url, "a-token", env={}, controller_file=controller_file).url == url


def test_a_pin_with_an_http_url_is_refused(controller_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"a pinned fingerprint needs an https:// URL"):
        find_target(
            "http://127.0.0.1:8470",
            "a-token",
            fingerprint="sha256:" + "ab" * 32,
            env={},
            controller_file=controller_file,
        )
