"""The node's identity in `<data-dir>/node.json`: name, token and manager URL (mode 0600)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from syncopate.paths import write_private_json

FILE_NAME = "node.json"


@dataclass(frozen=True)
class Identity:
    name: str
    token: str
    manager: str


def load(data_dir: Path) -> Identity | None:
    """The saved identity, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((data_dir / FILE_NAME).read_text(encoding="utf-8"))
        return Identity(str(data["name"]), str(data["token"]), str(data["manager"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(data_dir: Path, identity: Identity) -> None:
    write_private_json(data_dir / FILE_NAME, asdict(identity))
