"""The store reads what an older manager wrote: schema 3 project rows have no env or history;
schema 4 ones no secrets, and their data dir no secrets key yet; schema 5 log lines no time."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from syncopate.manager.secret_box import CHECK_KEY, KEY_FILE
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
        assert project.env == {} and project.history == [] and project.secrets == {}
        assert project.variables == {"count": 4} and project.epoch == 2
        assert store.get_meta("schema-version") == str(SCHEMA_VERSION) == "7"
    finally:
        store.close()


def test_a_schema_4_data_dir_gets_a_secrets_key_and_its_projects_load(tmp_path: Path) -> None:
    Store(tmp_path).close()
    # As a schema 4 manager left it: no key file, no check text, rows without `secrets`.
    (tmp_path / KEY_FILE).unlink()
    row: dict[str, Any] = {"name": "old", "url": "https://example.com/old.git", "status": "running"}
    row |= {"desired": "running", "env": {"A": "1"}}
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema-version'")
        db.execute("DELETE FROM meta WHERE key = ?", (CHECK_KEY,))
        db.execute("INSERT INTO projects(name, data) VALUES('old', ?)", (json.dumps(row),))
    store = Store(tmp_path)
    try:
        (project,) = store.load_projects()
        assert project.env == {"A": "1"} and project.secrets == {}
        assert (tmp_path / KEY_FILE).exists() and store.get_meta(CHECK_KEY)
    finally:
        store.close()


def test_schema_5_log_lines_get_a_time_column_and_keep_their_lines(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        # The table as a schema 5 manager made it, with a line in it.
        db.execute(
            "CREATE TABLE log_lines (project TEXT NOT NULL, seq INTEGER NOT NULL, "
            "line TEXT NOT NULL, PRIMARY KEY (project, seq)) WITHOUT ROWID"
        )
        db.execute("INSERT INTO log_lines VALUES('old', 0, 'from before')")
    store = Store(tmp_path)
    try:
        store.append_log_lines("old", 1, ["from now"], 1000, [1_800_000_000.5])
        assert store.log_lines("old", 10) == [
            (0, "from before", None),
            (1, "from now", 1_800_000_000.5),
        ]
    finally:
        store.close()
