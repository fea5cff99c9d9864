"""store.Store offers every operation of the storage.Storage protocol, with the same parameters.

mypy checks this where a Store is handed to the cluster; this test says it in one place, so a
second implementation (or a change to the protocol) has a model to follow.
"""

from __future__ import annotations

import inspect

import pytest

from syncopate.manager.storage import Storage
from syncopate.manager.store import Store

OPERATIONS = sorted(
    name for name, value in vars(Storage).items() if callable(value) and not name.startswith("_")
)


def test_the_protocol_lists_what_the_cluster_and_the_command_book_use() -> None:
    assert "transaction" in OPERATIONS
    assert {"save_node", "save_project", "load_nodes", "load_projects", "save_command"} <= set(
        OPERATIONS
    )


@pytest.mark.parametrize("name", OPERATIONS)
def test_store_implements(name: str) -> None:
    wanted = inspect.signature(getattr(Storage, name))
    offered = inspect.signature(getattr(Store, name))
    assert list(offered.parameters.values()) == list(wanted.parameters.values())
