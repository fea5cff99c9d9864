"""The pure parts of the PostgreSQL store and of leadership: statements, URLs, manager lists."""

from __future__ import annotations

from syncopate.manager.leadership import GONE_AFTER, ManagerEntry
from syncopate.manager.pg_connection import _placeholders, is_postgresql, shown


def test_sqlite_parameters_become_psycopg_ones_and_a_percent_stays_a_percent() -> None:
    assert _placeholders("SELECT a FROM t WHERE b = ? AND c = ?") == (
        "SELECT a FROM t WHERE b = %s AND c = %s"
    )
    assert _placeholders("SELECT 5 % 3, ?") == "SELECT 5 %% 3, %s"


def test_only_postgresql_urls_name_the_postgresql_store() -> None:
    assert is_postgresql("postgresql://u@h/db")
    assert is_postgresql("postgres://u@h:5433/db")
    assert not is_postgresql("sqlite:///x")
    assert not is_postgresql(None)


def test_a_password_in_the_store_url_is_never_shown() -> None:
    assert shown("postgresql://fleet:hunter2@db:5432/syncopate") == (
        "postgresql://fleet:***@db:5432/syncopate"
    )
    assert shown("postgresql://fleet@db/syncopate") == "postgresql://fleet@db/syncopate"


def test_a_manager_not_heard_of_or_leading_when_another_does_is_gone() -> None:
    leader = "http://a:1"
    assert ManagerEntry(leader, "leader", 1.0).info(leader)["role"] == "leader"
    assert ManagerEntry("http://b:1", "standby", 1.0).info(leader)["role"] == "standby"
    assert ManagerEntry("http://b:1", "standby", GONE_AFTER + 1).info(leader)["role"] == "gone"
    # It died leading, and another leads now.
    assert ManagerEntry("http://c:1", "leader", 2.0).info(leader)["role"] == "gone"
