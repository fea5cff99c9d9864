"""Where Syncopate keeps its files by default, and how it writes secrets to disk."""

from __future__ import annotations

import json
import os
import tempfile
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    write_private(path, json.dumps(data, indent=2) + "\n")
