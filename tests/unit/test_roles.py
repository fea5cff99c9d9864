"""Controller roles: the table of action -> role against the protocol's actions, the refusal's
words, the move of schema 6's people's tokens into the token table, and last use written at
most once a minute."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from syncopate.errors import Conflict, Forbidden, NotFound, Unauthorized
from syncopate.manager.auth import Caller, check_controller_token, hash_secret
from syncopate.manager.routes.devices import CONTROLLER_OPERATIONS
from syncopate.manager.server import rotate_controller_token, user_token
from syncopate.manager.store import DB_NAME, Store
from syncopate.manager.token_book import USE_WRITE_INTERVAL
from syncopate.manager.tokens import revoke_token, token_table
from syncopate.protocol import ACTIONS
from syncopate.roles import ACTION_ROLES, HW_ROLES, Role


def test_every_action_has_one_role_and_no_role_is_extra() -> None:
    assert tuple(ACTION_ROLES) == ACTIONS


def test_every_hw_operation_of_a_controller_has_a_role() -> None:
    assert set(HW_ROLES) == CONTROLLER_OPERATIONS


def test_viewers_read_operators_act_admins_manage() -> None:
    reads = {a for a, r in ACTION_ROLES.items() if r is Role.VIEWER}
    assert reads == {"status", "nodes", "logs", "rollout", "command-list", "command-show"}
    admins = {a for a, r in ACTION_ROLES.items() if r is Role.ADMIN}
    assert admins == {
        "node-drain",
        "node-undrain",
        "node-forget",
        "node-label",
        "tokens",
        "token-make",
        "token-revoke",
    }
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR) and not Role.OPERATOR.allows(Role.ADMIN)


def test_a_refusal_names_the_role_needed_and_the_tokens() -> None:
    alice = Caller("alice", Role.VIEWER, "h")
    with pytest.raises(Forbidden) as refused:
        alice.require(Role.OPERATOR, "action stop")
    assert refused.value.message == "action stop needs the operator role; alice's token is viewer"
    alice.require(Role.VIEWER, "action status")  # no error


def test_schema_6_peoples_tokens_become_admins_tokens(tmp_path: Path) -> None:
    """Before roles a person's token could do everything: it stays an admin's, and works."""
    store = Store(tmp_path)
    main = rotate_controller_token(tmp_path, store)
    store.close()
    with sqlite3.connect(tmp_path / DB_NAME) as db:  # as a schema 6 manager left it
        db.execute("UPDATE meta SET value = '6' WHERE key = 'schema-version'")
        db.execute("DROP TABLE controller_tokens")
        db.execute("INSERT INTO meta VALUES('controller-token:bob', ?)", (hash_secret("bobs"),))
    store = Store(tmp_path)
    try:
        bob = check_controller_token(store, "bobs")
        assert (bob.name, bob.role, bob.main) == ("bob", Role.ADMIN, False)
        assert check_controller_token(store, main).role is Role.ADMIN
        assert store.meta_with_prefix("controller-token:") == []
        assert [(t["name"], t["role"]) for t in token_table(store)][1:] == [("bob", "admin")]
    finally:
        store.close()


def test_tokens_made_replaced_and_revoked(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        rotate_controller_token(tmp_path, store)
        first = user_token(store, "carol", Role.VIEWER)
        second = user_token(store, "carol")  # again: a new token, the same role
        with pytest.raises(Unauthorized):
            check_controller_token(store, first)
        assert check_controller_token(store, second).role is Role.VIEWER
        assert check_controller_token(store, user_token(store, "dan")).role is Role.OPERATOR
        main_name = store.tokens.main_user()
        with pytest.raises(Conflict, match="--rotate"):
            user_token(store, main_name)
        with pytest.raises(Conflict, match=r"cannot be revoked.*--rotate"):
            revoke_token(store, main_name)
        with pytest.raises(NotFound, match="no controller token named 'erin'"):
            revoke_token(store, "erin")
        revoke_token(store, "carol")
        with pytest.raises(Unauthorized):
            check_controller_token(store, second)
        listed = token_table(store)
        assert [t["name"] for t in listed] == [main_name, "dan"] and listed[0]["main"]
        assert all(set(t) == {"name", "role", "created", "last-used", "main"} for t in listed)
    finally:
        store.close()


def test_last_use_is_written_at_most_once_a_minute(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        digest = hash_secret(user_token(store, "fay"))
        book = store.tokens

        def last_used() -> float | None:
            (fay,) = [t for t in book.listing() if t.name == "fay"]
            return fay.last_used

        assert last_used() is None
        book.used(digest, main=False, now=1000.0)
        book.used(digest, main=False, now=1000.0 + USE_WRITE_INTERVAL - 1)
        assert last_used() == 1000.0
        book.used(digest, main=False, now=1000.0 + USE_WRITE_INTERVAL)
        assert last_used() == 1000.0 + USE_WRITE_INTERVAL
    finally:
        store.close()
