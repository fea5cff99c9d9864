"""Making, listing and revoking people's controller tokens: what `manager token --user`,
`manager tokens`, `manager revoke` and the admin actions `token-make`, `tokens` and
`token-revoke` share (on the store; the CLI opens the data dir's, the manager its own)."""

from __future__ import annotations

from typing import Any

from syncopate import validate
from syncopate.errors import Conflict, InvalidRequest, NotFound
from syncopate.manager.auth import hash_secret, new_token
from syncopate.manager.logbook import iso
from syncopate.manager.sql_store import SqlStore
from syncopate.roles import DEFAULT_ROLE, Role

ROTATE_HINT = "`syncopate manager token --rotate` replaces it"


def make_token(store: SqlStore, name: str, role: Role | None = None) -> tuple[str, Role]:
    """A new controller token for `name` (replacing theirs) and its role.

    Without `role`: the role of the token it replaces, else the operator's (DEFAULT_ROLE).
    """
    try:
        validate.check_name(name, "user")
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    book = store.tokens
    if name == book.main_user():
        raise Conflict(
            f"{name} is the main controller token's name (an admin's); {ROTATE_HINT}, "
            "or give this token another name"
        )
    role = role or book.role_of(name) or DEFAULT_ROLE
    token = new_token()
    book.put(name, hash_secret(token), role)
    return token, role


def revoke_token(store: SqlStore, name: str) -> None:
    """End `name`'s token at once (the manager closes its open /events streams within a
    second); NotFound when there is none, Conflict for the main token."""
    book = store.tokens
    if book.remove(name):
        return
    if name == book.main_user():
        raise Conflict(f"the main controller token ({name}) cannot be revoked; {ROTATE_HINT}")
    known = ", ".join(t.name for t in book.listing()) or "none"
    raise NotFound(f"no controller token named {name!r}; there are: {known}")


def token_table(store: SqlStore) -> list[dict[str, Any]]:
    """Every token as `manager tokens --json` and the `tokens` action show it: name, role,
    created, last use (ISO 8601 UTC, or null) and whether it is the main one; never a value
    or a hash."""
    return [
        {
            "name": info.name,
            "role": info.role.value,
            "created": iso(info.created),
            "last-used": iso(info.last_used),
            "main": info.main,
        }
        for info in store.tokens.listing()
    ]
