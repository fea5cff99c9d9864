"""syncopate.literal: untrusted text in, plain data or a LiteralError out; never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from syncopate import literal, variables


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("{'a': (1, 2)}", {"a": [1, 2]}),
        ("['x', 'y']", ["x", "y"]),
        ("[" * 3 + "]" * 3, [[[]]]),
    ],
)
def test_parse_literal(text: str, value: Any) -> None:
    assert literal.parse_literal(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "[" * 50_000,
        "{" * 50_000,
        '{"a": ' * 50_000,
        "[" * 65 + "]" * 65,
        "(" * 50_000,
        "-" * 100_000 + "1",
        "[1," * 40_000,
        "{'a': " * 5_000 + "1" + "}" * 5_000,
    ],
)
def test_deep_text_is_refused_as_too_deep(text: str) -> None:
    with pytest.raises(literal.LiteralError):
        literal.parse_literal(text)
    with pytest.raises(variables.VariablesError):
        variables.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "{1: 2}",
        "{1, 2}",
        "b'x'",
        "\udcff",
        "'a' 'b' +",
        # Not JSON numbers: stored, they would make the manager's answers invalid JSON.
        '{"a": NaN}',
        '{"a": -Infinity}',
        "{'a': 1e999}",
    ],
)
def test_what_is_no_plain_data_is_a_literal_error(text: str) -> None:
    with pytest.raises(literal.LiteralError):
        literal.parse_literal(text)


def test_loads_json_refuses_bytes_that_are_not_utf8_and_deep_values() -> None:
    with pytest.raises(literal.LiteralError):
        literal.loads_json(b'{"a": "\xff"}')
    with pytest.raises(literal.TooDeep):
        literal.loads_json('{"a": ' * 500 + "1" + "}" * 500)
    assert literal.loads_json('{"a": ' * 63 + "1" + "}" * 63)


def test_check_depth_measures_without_recursion() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(literal.TooDeep):
        literal.check_depth(deep)
