"""What `manager token --user`, `manager tokens` and `manager revoke` do: on the manager's data
dir (the running manager sees the change through the database: a revoked token's next request
is refused, and its open /events streams close within a second), or, on another machine, through
the admin actions `token-make`, `tokens` and `token-revoke` of the manager named by --manager or
SYNCOPATE_MANAGER, with an admin's token."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from syncopate.errors import ConfigError

if TYPE_CHECKING:  # the store is opened only by the commands that need it
    from syncopate.cli.target import Target
    from syncopate.manager.sql_store import SqlStore

DATABASE = "syncopate.db"
STORE_FILE = "store.json"  # sql_store.STORE_FILE: a manager on PostgreSQL


def has_store(directory: Path) -> bool:
    """Whether `directory` is a manager's data dir: its SQLite database, or the store.json
    naming its PostgreSQL one."""
    return (directory / DATABASE).exists() or (directory / STORE_FILE).exists()


def no_database(directory: Path, what: str) -> ConfigError:
    """The error of a command that needs the manager's data dir and found no database there.

    `what` says what to do instead, after "run this on the manager's machine"."""
    where = "run this on the manager's machine"
    return ConfigError(f"no manager database in {directory}: {where}{what}")


# What the token commands say when neither way is open.
BOTH_WAYS = (
    " (with --data-dir if it keeps its data elsewhere), or from here pass --manager URL and "
    "--token T, an admin's (or set SYNCOPATE_MANAGER and SYNCOPATE_TOKEN)"
)


@contextmanager
def opened_store(directory: Path, what: str = BOTH_WAYS) -> Iterator[SqlStore]:
    """The manager's store in `directory` (or the PostgreSQL database its store.json names);
    ConfigError when there is no manager database (`what`: the way out the error names, see
    `no_database`)."""
    from syncopate.manager.sql_store import open_store

    if not has_store(directory):
        raise no_database(directory, what)
    try:
        store = open_store(directory)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(str(exc)) from None
    try:
        yield store
    finally:
        store.close()


def remote(
    directory: Path,
    manager: str | None,
    token: str | None,
    ca_file: str | None,
    fingerprint: str | None,
) -> Target | None:
    """The manager to manage tokens through: None when `directory` holds the manager's
    database (this is its machine), else the one named by --manager or SYNCOPATE_MANAGER.
    ConfigError saying both ways when there is neither."""
    if has_store(directory):
        return None
    if not manager and not os.environ.get("SYNCOPATE_MANAGER"):
        raise no_database(directory, BOTH_WAYS)
    from syncopate.cli.target import find_target

    return find_target(manager, token, ca_file, fingerprint)


def make(
    directory: Path, user: str, role: str | None, target: Target | None = None
) -> tuple[str, str]:
    """A new token of `user`'s own with `role` (None: as before, else operator), and the role
    it has."""
    if target is not None:
        from syncopate.cli.common import call

        fields = {"name": user, **({"role": role} if role else {})}
        answer = call(target, lambda c: c.controller("token-make", **fields))
        return str(answer["token"]), str(answer.get("role") or role or "")
    from syncopate.manager.tokens import make_token
    from syncopate.roles import Role

    with opened_store(directory) as store:
        token, made = make_token(store, user, Role(role) if role else None)
        return token, made.value


def listing(directory: Path, target: Target | None = None) -> list[dict[str, Any]]:
    """Every token: name, role, created, last use, main (never a value)."""
    if target is not None:
        from syncopate.cli.common import call

        answer = call(target, lambda c: c.controller("tokens"))
        return list(answer.get("tokens") or [])
    from syncopate.manager.tokens import token_table

    with opened_store(directory) as store:
        return token_table(store)


def revoke(directory: Path, name: str, target: Target | None = None) -> None:
    if target is not None:
        from syncopate.cli.common import call

        call(target, lambda c: c.controller("token-revoke", name=name))
        return
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
