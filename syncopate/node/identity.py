"""The node's identity in `<data-dir>/node.json`: name, token, manager URL and the manager's pin
(mode 0600). The pin (from `--fingerprint` or the join string) is kept so that a restart
without it still checks the manager before sending its token."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from syncopate.paths import write_private_json

log = logging.getLogger("syncopate.node")

FILE_NAME = "node.json"


@dataclass(frozen=True)
class Identity:
    name: str
    token: str
    manager: str
    fingerprint: str | None = None  # the manager's pin, "sha256:<hex>"


def load(data_dir: Path) -> Identity | None:
    """The saved identity, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((data_dir / FILE_NAME).read_text(encoding="utf-8"))
        pin = data.get("fingerprint")
        return Identity(
            str(data["name"]),
            str(data["token"]),
            str(data["manager"]),
            str(pin) if pin else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(data_dir: Path, identity: Identity) -> None:
    data = asdict(identity)
    if not identity.fingerprint:
        del data["fingerprint"]  # node.json as before pins, for an agent that has none
    write_private_json(data_dir / FILE_NAME, data)


def pin_for(data_dir: Path, manager: str, given: str | None) -> str | None:
    """The pin to check `manager` with: the one given (a later one wins), else the one kept
    with the identity for that manager."""
    if given:
        return given
    saved = load(data_dir)
    if saved is not None and saved.manager == manager:
        if saved.fingerprint:  # said, so a restart without --token visibly still pins
            log.info("pinned %s (kept in %s)", saved.fingerprint, FILE_NAME)
        return saved.fingerprint
    return None


def remove_unjoined(data_dir: Path) -> None:
    """Remove a data dir this agent made for a first join that failed (a wrong pin, a refused
    password): it holds only empty folders, and left behind it would look like a node."""
    if not (data_dir / FILE_NAME).exists():
        shutil.rmtree(data_dir, ignore_errors=True)
