"""Typer's value coercion, without pydantic for the values that need none.

Typer 0.2x coerces every parameter's value through a pydantic `TypeAdapter`, built the first
time that parameter is parsed. Importing pydantic and building one costs every `syncopate` run
about 80 ms on this machine's kind of CPU (much more on a Pi), a third of what `project list`
may take in all (benchmarks/cli.py). Most command lines only carry values that need no
coercion: None for an option not given (Typer returns None, or () for a repeatable one, before
its adapter runs) and a str for a `str` parameter without a parser (the adapter hands it back
as it is). `install()` makes those skip the adapter; every other value (numbers, paths, lists,
flags given as text) still goes through Typer's own coercion, built as before on first use.
With a Typer that has no such layer, `install()` does nothing.
"""

from __future__ import annotations

from typing import Any


class DeferredCoercion:
    """A parameter's coercion that builds Typer's (the pydantic adapter) only when a value
    needs it."""

    def __init__(self, descriptor: Any, build: Any) -> None:
        self.descriptor = descriptor
        self.build = build
        self.built: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            # What Typer's RuntimeParam.coerce answers for None, before it uses the adapter.
            return () if param.multiple or param.nargs == -1 else None
        if (
            type(value) is str
            and self.descriptor.annotation is str
            and self.descriptor.parameter_info.parser is None
            and getattr(self.descriptor.parameter_info, "click_type", None) is None
            and not param.multiple
            and param.nargs == 1
        ):
            return value
        if self.built is None:
            self.built = self.build(self.descriptor)
        return self.built.coerce(value, param=param, ctx=ctx)


def install() -> bool:
    """Give Typer's parameters the deferred coercion; whether this Typer has a layer to defer."""
    try:
        from typer._coercion import build_runtime_param
        from typer.core import _TyperParameter
    except ImportError:  # a Typer before the pydantic layer: nothing to skip
        return False
    if not hasattr(_TyperParameter, "get_runtime_param"):
        return False

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            self._runtime_param = DeferredCoercion(self.type_descriptor, build_runtime_param)
        return self._runtime_param

    setattr(_TyperParameter, "get_runtime_param", get_runtime_param)  # noqa: B010
    return True
