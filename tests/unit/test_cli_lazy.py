"""The lazily built command tree (cli/lazy.py) and the deferred coercion (cli/coercion.py) are
what Typer itself would make and answer; tests/integration/test_cli_imports.py checks what a
whole run imports."""

from __future__ import annotations

import dataclasses
import types
from typing import Any

import pytest
import typer
import typer.main
from typer._coercion import build_runtime_param

from syncopate.cli import command, demo, logs, main, manager, node, project, tui
from syncopate.cli.coercion import DeferredCoercion
from syncopate.cli.lazy import LazyGroup, subcommands


def eager_root() -> Any:
    """The root group as main.py built it before: every command added the usual way."""
    app = typer.Typer(
        name="syncopate",
        help="Run long-lived git projects across a fleet of small computers.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    app.callback()(main.main)
    for name, sub in (("project", project), ("node", node), ("manager", manager)):
        app.add_typer(sub.app, name=name)
    app.add_typer(command.app, name="command")
    app.command("demo")(demo.demo)
    app.command("logs")(logs.logs)
    app.command("tui")(tui.tui)
    return typer.main.get_command(app)


def value(v: Any) -> Any:
    """`v` as plain data that compares by value, though each build makes its own objects."""
    if isinstance(v, str | int | float | bool | type(None) | type | types.GenericAlias):
        return repr(v)
    if dataclasses.is_dataclass(v):  # a TypeDescriptor
        return {f.name: value(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, list | tuple):
        return [value(item) for item in v]
    if isinstance(v, dict):
        return {k: value(x) for k, x in v.items()}
    if callable(v):  # callbacks are wrapped anew for each build
        return type(v).__name__
    if hasattr(v, "__dict__"):  # a ParamType or a ParameterInfo: which, with what settings
        return (type(v).__name__, {k: value(x) for k, x in vars(v).items()})
    return repr(v)


def describe(cmd: Any) -> dict[str, Any]:
    """Everything of a command but its class: its attributes, its params', its commands'."""
    skip = {"commands", "params", "pending"}
    return {
        **{k: value(v) for k, v in vars(cmd).items() if k not in skip},
        "params": [{k: value(v) for k, v in vars(p).items()} for p in cmd.params],
        "commands": [(n, describe(c)) for n, c in subcommands(cmd).items()],
    }


def test_the_lazy_tree_is_the_eager_one() -> None:
    lazy = typer.main.get_command(main.app)
    assert isinstance(lazy, LazyGroup)
    assert describe(lazy) == describe(eager_root())


def test_only_the_command_that_runs_is_built() -> None:
    root = typer.main.get_command(main.app)
    ctx = typer.Context(root)
    assert root.commands == {}  # type: ignore[attr-defined]
    group = root.get_command(ctx, "project")  # type: ignore[attr-defined]
    assert list(root.commands) == ["project"]  # type: ignore[attr-defined]
    assert group.commands == {}
    assert group.get_command(ctx, "list").name == "list"
    assert list(group.commands) == ["list"]
    assert group.get_command(ctx, "no-such") is None


def leaves(cmd: Any) -> list[Any]:
    children = subcommands(cmd)
    return [leaf for c in children.values() for leaf in leaves(c)] if children else [cmd]


def outcome(coerce: Any, raw: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        return "value", coerce(raw, param=param, ctx=ctx)
    except Exception as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("raw", [None, "x", "12", "0.5", "a b", "", "K=V"])
def test_deferred_coercion_answers_as_typers_own(raw: Any) -> None:
    root = typer.main.get_command(main.app)
    checked = 0
    for leaf in leaves(root):
        ctx = typer.Context(leaf)
        for param in leaf.params:
            descriptor = getattr(param, "type_descriptor", None)
            if descriptor is None:
                continue  # click's own (--help)
            typers = build_runtime_param(descriptor).coerce
            deferred = DeferredCoercion(descriptor, build_runtime_param).coerce
            assert outcome(deferred, raw, param, ctx) == outcome(typers, raw, param, ctx), (
                leaf.name,
                param.name,
            )
            checked += 1
    assert checked > 100
