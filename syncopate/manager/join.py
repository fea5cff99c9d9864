"""The join secret and the line a node runs to join: `syncopate node join URL --token SYN1-...`.

The join secret is the seed's join password. Its hash lives in the store's meta
(`join-password-hash`), where the join route reads it at every join: `manager rotate-join` (another
process) changes it and the running manager takes the new one and refuses the old at once.
The plain password is kept in `<data-dir>/password` (0600) unless it was given with --password.
"""

from __future__ import annotations

import json
from pathlib import Path

from syncopate.errors import ConfigError
from syncopate.manager.auth import hash_secret, new_password, secret_matches
from syncopate.manager.sql_store import SqlStore
from syncopate.paths import write_private
from syncopate.pins import join_token

JOIN_PASSWORD_KEY = "join-password-hash"
PASSWORD_FILE = "password"
CONTROLLER_FILE = "controller.json"


def join_command(url: str, pin: str | None, password: str) -> str:
    """What a node runs to join: with the join string over HTTPS, with --password over HTTP."""
    if pin:
        return f"syncopate node join {url} --token {join_token(pin, password)}"
    return f"syncopate node join {url} --password {password}"


def rotate_join(data_dir: Path, store: SqlStore) -> str:
    """A new join password: into the password file and, durably, its hash into the store."""
    password = new_password()
    write_private(data_dir / PASSWORD_FILE, password + "\n")
    store.set_meta(JOIN_PASSWORD_KEY, hash_secret(password), durable=True)
    return password


def kept_join_command(data_dir: Path, store: SqlStore, url: str | None = None) -> str:
    """The join command of the manager whose data dir this is, from what it keeps there;
    ConfigError says why there is none (not started yet, or a password that is not kept)."""
    path = data_dir / CONTROLLER_FILE
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    join_url = url or recorded.get("join-url")
    if not join_url:
        raise ConfigError(f"no join URL in {path}: start the manager first (or pass --url)")
    try:
        password = (data_dir / PASSWORD_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        password = ""
    stored = store.get_meta(JOIN_PASSWORD_KEY)
    if not password or (stored is not None and not secret_matches(password, stored)):
        raise ConfigError(
            "the manager runs with a join password given by --password (or SYNCOPATE_PASSWORD), "
            "which is not kept: use that password, or make a new kept one with "
            "`syncopate manager rotate-join`"
        )
    https = str(join_url).startswith("https://")
    pin = recorded.get("fingerprint") if https else None
    if https and not pin:
        raise ConfigError(f"no fingerprint in {path}: restart the manager to record it")
    return join_command(str(join_url), pin, password)
