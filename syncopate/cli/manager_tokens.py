"""What `manager token --user`, `manager tokens` and `manager revoke` do on the manager's data
dir (the running manager sees the change through the database: a revoked token's next request
is refused, and its open /events streams close within a second)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from syncopate.errors import ConfigError

if TYPE_CHECKING:  # the store is opened only by the commands that need it
    from syncopate.manager.store import Store


@contextmanager
def opened_store(directory: Path) -> Iterator[Store]:
    """The manager's store in `directory`; ConfigError when there is no manager database."""
    from syncopate.manager.store import Store

    if not (directory / "syncopate.db").exists():
        raise ConfigError(f"no manager database in {directory}; start the manager first")
    store = Store(directory)
    try:
        yield store
    finally:
        store.close()


def make(directory: Path, user: str, role: str | None) -> str:
    """A new token of `user`'s own with `role` (None: as before, else operator)."""
    from syncopate.manager.tokens import make_token
    from syncopate.roles import Role

    with opened_store(directory) as store:
        return make_token(store, user, Role(role) if role else None)[0]


def listing(directory: Path) -> list[dict[str, Any]]:
    from syncopate.manager.tokens import token_table

    with opened_store(directory) as store:
        return token_table(store)


def revoke(directory: Path, name: str) -> None:
    from syncopate.manager.tokens import revoke_token

    with opened_store(directory) as store:
        revoke_token(store, name)


def print_tokens(tokens: list[dict[str, Any]]) -> None:
    """The tokens as a table: name, role, when made, when last used (local time)."""
    from syncopate.render import local_time

    width = max([4, *(len(t["name"]) + (7 if t["main"] else 0) for t in tokens)])
    header = f"{'NAME':<{width}}  {'ROLE':<8}  {'CREATED':<19}  LAST USED"
    lines = [header]
    for token in tokens:
        name = token["name"] + (" (main)" if token["main"] else "")
        created = local_time(token["created"]) if token["created"] else "-".ljust(19)
        used = local_time(token["last-used"]) if token["last-used"] else "never"
        lines.append(f"{name:<{width}}  {token['role']:<8}  {created}  {used}".rstrip())
    typer.echo("\n".join(lines))
