"""The store reads what an older manager wrote: schema 3 project rows have no env or history."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from syncopate.manager.store import DB_NAME, SCHEMA_VERSION, Store


def test_a_schema_3_project_loads_with_no_env_and_no_history(tmp_path: Path) -> None:
    Store(tmp_path).close()
    row: dict[str, Any] = {"name": "old", "url": "https://example.com/old.git", "status": "running"}
    row |= {"desired": "running", "variables": {"count": 4}, "epoch": 2}
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema-version'")
        db.execute("INSERT INTO projects(name, data) VALUES('old', ?)", (json.dumps(row),))
    store = Store(tmp_path)
    try:
        (project,) = store.load_projects()
        assert project.env == {} and project.history == []
        assert project.variables == {"count": 4} and project.epoch == 2
        assert store.get_meta("schema-version") == str(SCHEMA_VERSION) == "4"
    finally:
        store.close()
