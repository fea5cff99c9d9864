"""The commands table (the command channel's records) of the SQL stores, and how a record
becomes a row: `SqlStore` (sql_store.py) takes these methods from `CommandRows`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from syncopate import fast_json
from syncopate.manager.records import CommandRecord, CommandStep
from syncopate.manager.storage import Connection
from syncopate.states import CommandState

_COMMAND_TRANSIENT = {"since"}

_STORED_FIELDS: dict[type, tuple[str, ...]] = {}


def dump_record(record: Any, transient: set[str], extra: dict[str, Any] | None = None) -> str:
    kind = type(record)
    names = _STORED_FIELDS.get(kind)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(record) if f.name not in transient)
        _STORED_FIELDS[kind] = names
    fields = {name: getattr(record, name) for name in names}
    if extra:
        fields.update(extra)
    return fast_json.dumps_text(fields)


class CommandRows:
    """The command channel's rows; the store provides `_db` and `transaction`."""

    _db: Connection
    transaction: Callable[..., AbstractContextManager[None]]

    def save_command(self, command: CommandRecord) -> None:
        fields = json.loads(dump_record(command, _COMMAND_TRANSIENT | {"history"}))
        fields["history"] = [dataclasses.asdict(step) for step in command.history]
        with self.transaction():
            self._db.execute(
                'INSERT INTO commands(id, node, state, "user", data) VALUES(?, ?, ?, ?, ?) '
                "ON CONFLICT(id) DO UPDATE SET state = excluded.state, data = excluded.data",
                (
                    command.id,
                    command.node,
                    command.state.value,
                    command.user,
                    json.dumps(fields, separators=(",", ":")),
                ),
            )

    @staticmethod
    def _command(data: str) -> CommandRecord:
        fields = json.loads(data)
        fields["state"] = CommandState(fields["state"])
        fields["history"] = [CommandStep(**step) for step in fields.get("history", [])]
        return CommandRecord(**fields)

    def last_command_id(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM commands").fetchone()
        return int(row[0] or 0)

    def get_command(self, command_id: int) -> CommandRecord | None:
        row = self._db.execute("SELECT data FROM commands WHERE id = ?", (command_id,)).fetchone()
        return None if row is None else self._command(row[0])

    def load_commands_in(self, states: frozenset[CommandState]) -> list[CommandRecord]:
        """The commands in the given states, oldest first."""
        marks = ",".join("?" * len(states))
        rows = self._db.execute(
            f"SELECT data FROM commands WHERE state IN ({marks}) ORDER BY id",
            [state.value for state in states],
        )
        return [self._command(data) for (data,) in rows]

    def last_command_of(self, node: str) -> CommandRecord | None:
        row = self._db.execute(
            "SELECT data FROM commands WHERE node = ? ORDER BY id DESC LIMIT 1", (node,)
        ).fetchone()
        return None if row is None else self._command(row[0])

    def find_commands(
        self,
        *,
        node: str | None = None,
        state: str | None = None,
        user: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[CommandRecord]:
        """Commands matching every filter given, newest first; `before` pages back by id."""
        where: list[str] = []
        args: list[str | int] = []
        for column, value in (("node", node), ("state", state), ("user", user)):
            if value is not None:
                where.append(f'"{column}" = ?')  # "user": reserved in PostgreSQL
                args.append(value)
        if before is not None:
            where.append("id < ?")
            args.append(before)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(
            f"SELECT data FROM commands {clause} ORDER BY id DESC LIMIT ?", [*args, limit]
        )
        return [self._command(data) for (data,) in rows]
