"""Which manager a controller command talks to, and with which token (DESIGN §8).

In order: `--manager`/`--token` (and `--ca-file`/`--fingerprint`), else the environment
(`SYNCOPATE_MANAGER`, `SYNCOPATE_TOKEN`, `SYNCOPATE_CA_FILE`, `SYNCOPATE_FINGERPRINT`), else the
`controller.json` that a manager on this machine wrote into its data dir. A URL given without a
token borrows the local manager's token when that manager is the one named.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncopate.errors import ConfigError
from syncopate.hosts import is_loopback
from syncopate.paths import default_manager_dir

CONTROLLER_FILE = "controller.json"


@dataclass(frozen=True)
class Target:
    url: str
    token: str
    ca_file: str | None = None
    fingerprint: str | None = None
    source: str = ""  # where the URL came from, for error messages
    token_source: str = ""  # where the token came from


def read_controller_file(path: Path) -> dict[str, Any] | None:
    """The local manager's controller.json, or None when there is none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except PermissionError:
        raise ConfigError(
            f"cannot read {path} (permission denied); run as the manager's user or pass --token"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path} ({exc})") from None
    if not isinstance(data, dict) or not data.get("url") or not data.get("token"):
        raise ConfigError(f"{path} has no url and token; restart the manager to rewrite it")
    return data


def find_target(
    manager: str | None = None,
    token: str | None = None,
    ca_file: str | None = None,
    fingerprint: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    controller_file: Path | None = None,
) -> Target:
    """The manager to talk to; a ConfigError saying what to do when there is none."""
    env = os.environ if env is None else env
    path = controller_file or default_manager_dir() / CONTROLLER_FILE
    ca_file = ca_file or env.get("SYNCOPATE_CA_FILE") or None
    fingerprint = fingerprint or env.get("SYNCOPATE_FINGERPRINT") or None
    if manager:
        source = "--manager"
    elif env.get("SYNCOPATE_MANAGER"):
        manager, source = env["SYNCOPATE_MANAGER"], "SYNCOPATE_MANAGER"
    else:
        local = read_controller_file(path)
        if local is None:
            raise ConfigError(
                "no manager to talk to: pass --manager URL --token TOKEN, set "
                f"SYNCOPATE_MANAGER and SYNCOPATE_TOKEN, or run this where the manager runs "
                f"(no {path})"
            )
        given, token_source = _given_token(token, env)
        return Target(
            url=str(local["url"]),
            token=given or str(local["token"]),
            ca_file=ca_file,
            fingerprint=fingerprint or local.get("fingerprint"),
            source=str(path),
            token_source=token_source or str(path),
        )
    url = manager.rstrip("/")
    given, token_source = _given_token(token, env)
    if given is None or (url.startswith("https://") and not fingerprint):
        try:
            local = read_controller_file(path)
        except ConfigError:
            if given is None:
                raise
            local = None  # only its pin was looked for: the CA store may verify instead
        if local is not None and str(local["url"]).rstrip("/") == url:
            # This machine's manager: its pin, with the token given or the one kept there.
            if given is None:
                given, token_source = str(local["token"]), str(path)
            fingerprint = fingerprint or local.get("fingerprint")
    if not given:
        raise ConfigError(
            f"no controller token for {url}: pass --token or set SYNCOPATE_TOKEN "
            "(`syncopate manager token` on the manager's machine prints it)"
        )
    return _sent_safely(Target(url, given, ca_file, fingerprint, source, token_source), env)


def _sent_safely(target: Target, env: Mapping[str, str]) -> Target:
    """The target, unless talking to it would put its token on the network in clear.

    Beyond loopback a manager serves HTTPS unless it was started with --insecure: an http://
    URL there is a mistake (or that manager), and the token must not go before anyone notices.
    A pin with an http:// URL pins nothing. SYNCOPATE_INSECURE=1 allows the --insecure case.
    """
    for url in target.url.split(","):  # several managers sharing a database: each
        _check_one(url.strip(), target.fingerprint, env)
    return target


def _check_one(url: str, fingerprint: str | None, env: Mapping[str, str]) -> None:
    scheme, _, rest = url.partition("://")
    if scheme != "http":
        return
    host = urlsplit(url).hostname or rest
    if fingerprint:
        raise ConfigError(
            f"a pinned fingerprint needs an https:// URL, not {url}: nothing was sent "
            f"(use https://{rest})"
        )
    if not is_loopback(host) and env.get("SYNCOPATE_INSECURE") != "1":
        raise ConfigError(
            f"refusing to send the controller token in clear to {url}: a manager beyond "
            f"loopback serves HTTPS (use https://{rest}); for one started with --insecure, "
            "set SYNCOPATE_INSECURE=1"
        )


def _given_token(token: str | None, env: Mapping[str, str]) -> tuple[str | None, str]:
    if token:
        return token, "--token"
    if env.get("SYNCOPATE_TOKEN"):
        return env["SYNCOPATE_TOKEN"], "SYNCOPATE_TOKEN"
    return None, ""
