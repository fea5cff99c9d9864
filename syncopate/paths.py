"""Where Syncopate keeps its files by default, and how it writes secrets to disk."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def data_home() -> Path:
    """$SYNCOPATE_HOME, else $XDG_DATA_HOME/syncopate, else ~/.local/share/syncopate."""
    explicit = os.environ.get("SYNCOPATE_HOME")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "syncopate"


def default_manager_dir() -> Path:
    return data_home() / "manager"


def default_node_dir() -> Path:
    return data_home() / "node"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (mode 0600), atomically."""
    from syncopate.variables import atomic_write  # here: a controller command seldom writes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text, mode=0o600)


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    write_private(path, json.dumps(data, indent=2) + "\n")
