"""The stores a manager test runs on: SQLite, and PostgreSQL (DESIGN §13), as the conftest's
`store_url` fixture gives them, and how a module or a table of cases narrows that."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

STORES = ["sqlite", "postgresql"]


def by_store(
    cases: list[Any], id_of: Callable[[Any], str], key: Callable[[Any], Any]
) -> pytest.MarkDecorator:
    """Parametrize a table of cases over the stores: every case on SQLite, and on PostgreSQL
    the first case of each `key` (say, a route and the status it answers with).

    For tables whose cases are refused before the store is reached (validation, auth): every
    refusal is checked on one store, and the other's part (that a refused write changes no row
    of it) once for each kind of refusal, not 466 times at a fresh database each.
    """
    params = [pytest.param(case, "sqlite", id=f"{id_of(case)}-sqlite") for case in cases]
    kinds: set[Any] = set()
    for case in cases:
        if key(case) not in kinds:
            kinds.add(key(case))
            params.append(pytest.param(case, "postgresql", id=f"{id_of(case)}-postgresql"))
    return pytest.mark.parametrize(("case", "store_url"), params, indirect=["store_url"])


@pytest.fixture(name="store_url")
def sqlite_store() -> None:
    """SQLite alone: for modules that test what the agent does (rollouts, faults of its
    projects, health commands); the store is the manager's tests' business, on both. A module
    takes it with `from tests.stores import sqlite_store as sqlite_store`."""
    return None
